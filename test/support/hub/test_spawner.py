"""A local-process spawner with behaviour chosen by the user name, for hub tests:
`slow-*` takes TestSpawner.slow_seconds to start, `fail-*` fails to start, `held-*` starts only once the
test releases it (a file named after the user in TestSpawner.release_dir, consumed by the start);
everyone else starts at once.
It reports progress messages like KubeSpawner does, so progress streams carry the hub's words."""
import asyncio
import os

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Float, Unicode


class TestSpawner(SimpleLocalProcessSpawner):
    slow_seconds = Float(3.0, config=True, help="How long slow-* users take to start.")
    release_dir = Unicode("", config=True, help="Where the test releases held-* users' spawns.")

    async def start(self):
        name = self.user.name
        if name.startswith("slow-"):
            await asyncio.sleep(self.slow_seconds)
        if name.startswith("held-"):
            release = os.path.join(self.release_dir, name)
            while not os.path.exists(release):
                await asyncio.sleep(0.05)
            os.remove(release)
        if name.startswith("fail-"):
            raise RuntimeError(f"the test spawner refuses to start {name}")
        return await super().start()

    async def progress(self):
        yield {"progress": 20, "message": f"Preparing a server for {self.user.name}"}
        if self.user.name.startswith(("slow-", "held-")):
            await asyncio.sleep(self.slow_seconds / 2)
            yield {"progress": 50, "message": "Still pulling the image (test spawner)"}
