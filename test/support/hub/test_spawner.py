"""A local-process spawner with behaviour chosen by the user name, for hub tests:
`slow-*` takes TestSpawner.slow_seconds to start, `fail-*` fails to start; everyone else starts at once.
It reports progress messages like KubeSpawner does, so progress streams carry the hub's words."""
import asyncio

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Float


class TestSpawner(SimpleLocalProcessSpawner):
    slow_seconds = Float(3.0, config=True, help="How long slow-* users take to start.")

    async def start(self):
        name = self.user.name
        if name.startswith("slow-"):
            await asyncio.sleep(self.slow_seconds)
        if name.startswith("fail-"):
            raise RuntimeError(f"the test spawner refuses to start {name}")
        return await super().start()

    async def progress(self):
        yield {"progress": 20, "message": f"Preparing a server for {self.user.name}"}
        if self.user.name.startswith("slow-"):
            await asyncio.sleep(self.slow_seconds / 2)
            yield {"progress": 50, "message": "Still pulling the image (test spawner)"}
