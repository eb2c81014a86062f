"""The client side: ``WorkflowClient``, an instance's history and timeline, and the inbox queue. The
engine never imports it."""
