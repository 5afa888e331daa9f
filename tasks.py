"""A developer's `invoke` (run from this directory): the product's tasks and the development
tasks side by side. `invoke --list`; `invoke --help create`.

Nothing is defined here. Octopod's tasks are `octopod_control.tasks.ns`, the namespace
scripts/ and the bundle boot (through `octopod_control.program.main`, never through this
file); the development tasks (demo, test, wrappers, bundle, image, config-docs) are
`octopod_dev.tasks.ns`. Both keep their names at the top level: `invoke create --name x`,
`invoke demo`, `invoke test`.
"""
from invoke import Collection

from octopod_control.tasks import ns as octopod
from octopod_dev.tasks import ns as development

ns = Collection()
for collection in (octopod, development):
    for name, task in collection.tasks.items():
        if name in ns.tasks:  # add_task would silently replace it
            raise ValueError(f"task {name!r} is both a product and a development task")
        ns.add_task(task, name)
