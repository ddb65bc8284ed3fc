"""The Lava simulator: neurolang models simulated in Lava (lava-nc 0.10.0, Python 3.10).

Lava runs in its own environment, ``.venv-lava`` (``neurolang setup-lava``), which has no
torch. The Lava side (``plan``, ``quantise``, ``network``, ``processes``, ``run``) imports
neither torch nor the torch side of neurolang; it reads model files through the torch-free
``neurolang.nir``. The main environment drives it through files and a subprocess:

- ``neurolang.lava.env``: create and locate the environment (stdlib only);
- ``neurolang.lava.plan``: a NIR graph as a plan of Lava processes (numpy only):
  ``plan_rules`` (one rule per node type), ``plan_types`` (the plan), ``plan_bounds`` (value
  bounds of fixed point); ``neurolang.lava.quantise``: its fixed-point scales;
- ``neurolang.lava.network``: the Lava network of a plan; ``neurolang.lava.processes``:
  neurolang's own Lava processes;
- ``python -m neurolang.lava.run``: the runner the driver calls;
- ``neurolang.lava.driver`` (main environment): runs the runner, the torch reference and the
  comparison; ``neurolang.lava.commands``: the ``setup-lava`` and ``simulate`` commands.
"""
