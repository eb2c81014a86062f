"""The engine: an invocation (``invocation``) replays a workflow's journal through the ``Step`` facade
(``step``), the scheduler and the durable operations (``ops``). It never imports the client side."""
