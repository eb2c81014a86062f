"""The workflow API: ``@workflow`` and the registry, the values a step body gets (``calls``), and
``WorkflowEntrypoint``. It imports only ``framework.core`` and ``framework.errors``."""
