"""Cloudflare's published Python Workflows examples, run on this framework.

Each class is an example from Cloudflare's documentation, as published, with only these changes:

- ``from workers import WorkflowEntrypoint`` became ``from framework import WorkflowEntrypoint``, and
  ``from workers.workflows import NonRetryableError`` became ``from framework import NonRetryableError``
  (one import line at the top serves every example).
- ``Response`` and ``WorkerEntrypoint`` (also imported from ``workers``) serve only each page's
  ``Default`` Worker class, whose ``fetch`` handler creates an instance through the ``MY_WORKFLOW``
  binding. Those imports and classes are left out: the tests create instances with ``rt.client.create``.
- Classes are renamed with a ``Cf`` prefix, because registration is global by class name and several
  pages reuse one name (``PythonWorkflowStarter``, ``MyWorkflow``).
- A fragment (a bare ``async def run``, or a bare ``raise``) is wrapped in a class, marked WRAPPED.

Nothing else changed: comments, prints, quotes and blank lines are the pages' own.
"""

# fmt: off

import datetime

from framework import NonRetryableError, WorkflowEntrypoint


# From the page "Python Workflows SDK" (Get Started).
class CfPythonWorkflowStarter(WorkflowEntrypoint):
    async def run(self, event, step):

        @step.do('step1')
        async def step_1():
            # does stuff
            print('executing step1')

        @step.do('step2')
        async def step_2():
            # does stuff
            print('executing step2')

        await step_1()
        await step_2()


# From the page "Python Workers API" (WorkflowStep).
class CfMyWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do()
        async def my_first_step():
            # do some work
            return "Hello World!"

        await my_first_step()


# From the page "Python Workers API" (step.sleep). WRAPPED: the page shows only the run method.
class CfSleepFragment(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.sleep("my-sleep-step", "10 seconds")


# From the page "Python Workers API" (step.sleep_until). WRAPPED: the page shows only the run method.
class CfSleepUntilFragment(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.sleep_until("my-sleep-step", datetime.datetime.now() + datetime.timedelta(seconds=10))


# From the page "Python Workers API" (step.wait_for_event). WRAPPED: the page shows only the run method.
class CfWaitForEventFragment(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.wait_for_event("my-wait-for-event-step", "my-event-type")


# From the page "Python Workers API" (Error Handling). WRAPPED: the page shows only the run method.
class CfErrorHandling(WorkflowEntrypoint):
    async def run(self, event, step):
        async def try_step(fn):
            try:
                return await fn()
            except Exception as e:
                print(f"Successfully caught {type(e).__name__}: {e}")

        @step.do("my_failing")
        async def my_failing():
            print("Executing my_failing")
            raise TypeError("Intentional error in my_failing")

        await try_step(my_failing)


# From the page "Python Workers API" (NonRetryableError). WRAPPED: the page shows only the raise
# statement; here it is the body of a step, and ``message`` is set before it.
class CfNonRetryable(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do()
        async def validate():
            message = "cannot be retried"  # WRAPPED: the page leaves `message` undefined
            raise NonRetryableError(message)

        return await validate()


# From the page "Python Workers API" (Configure a workflow instance).
class CfDemoWorkflowClass(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do('step-name', config={"retries": {"limit": 1, "delay": "10 seconds"}})
        async def first_step():
            # do some work
            pass


# From the page "Python Workers API" (Access step context).
class CfCtxWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do()
        async def read_context(ctx):
            print(ctx["step"]["name"])    # step name
            print(ctx["step"]["count"])   # step count
            print(ctx["attempt"])         # attempt number
            print(ctx["config"])          # resolved step config
            return ctx["attempt"]

        return await read_context()


# From the page "Interact with a Workflow" (how you use the payload in your workflow).
class CfPayloadWorkflowClass(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do('step-name')
        async def first_step():
            payload = event["payload"]
            return payload


# From the page "DAG Workflows" (dependencies by parameter name).
class CfDagStarter(WorkflowEntrypoint):
    async def run(self, event, step):
        async def await_step(fn):
            try:
                return await fn()
            except TypeError as e:
                print(f"Successfully caught {type(e).__name__}: {e}")

        await step.sleep('demo sleep', '10 seconds')

        @step.do()
        async def dep_1():
            # does stuff
            print('executing dep1')
            return 'dep1'

        @step.do()
        async def dep_2():
            # does stuff
            print('executing dep2')
            return 'dep2'

        @step.do(concurrent=True)
        async def final_step(dep_1, dep_2):
            # does stuff
            print(f'{dep_1} {dep_2}')

        await await_step(final_step)


# From an earlier version of the page "DAG Workflows" (explicit ``depends=[...]``, which the current
# page keeps as the older compatibility behaviour).
class CfDagDepends(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("dependency a")
        async def step_a():
            # do some work
            return 10

        @step.do("dependency b")
        async def step_b():
            # do some work
            return 20

        @step.do("my final step", depends=[step_a, step_b], concurrent=True)
        async def my_final_step(result_a=0, result_b=0):
            # should return 30
            return result_a + result_b

        await my_final_step()


# From the changelog entry announcing Python Workflows in beta (August 2025).
class CfChangelogStarter(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("my first step")
        async def my_first_step():
            # do some work
            return "Hello Python!"

        await my_first_step()

        await step.sleep("my-sleep-step", "10 seconds")

        @step.do("my second step")
        async def my_second_step():
            # do some more work
            return "Hello again!"

        await my_second_step()
