"""neurolang's own Lava processes (with their process models in the same module).

Lava imports every ``.py`` file in the folder of a process's module to find process models,
so this package holds Lava processes and nothing else.
"""
