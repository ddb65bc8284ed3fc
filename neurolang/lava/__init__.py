"""The Lava side: neurolang models simulated in Lava (lava-nc 0.10.0, Python 3.10).

Runs in its own environment, ``.venv-lava`` (``neurolang setup-lava``), which has no torch:
nothing in this package imports torch or the torch side of neurolang. The main environment
drives it through files and a subprocess (``neurolang.export.simulate``):

- ``neurolang.lava.env``: create and locate the environment (stdlib only);
- ``neurolang.lava.network``: a NIR graph as a plan of Lava processes, and the network;
- ``neurolang.lava.processes``: neurolang's own Lava processes;
- ``python -m neurolang.lava.run``: the runner the driver calls.
"""
