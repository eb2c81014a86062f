"""Example workflows. ``WORKFLOW_MODULES`` names the ones a deployment loads."""
