"""The Lava environment: a Python 3.10 venv with lava-nc 0.10.0, nir, numpy<2 and h5py.

Standard library only: the main (torch) side imports this to create and find the
environment; the Lava side never needs it. The project itself is not pip-installed there
(that would pull torch): a ``neurolang.pth`` file puts the folder that holds the
``neurolang`` package on the venv's path, and the driver sets ``PYTHONPATH`` as well.
Set-up is idempotent: a stamp file records what was installed.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from neurolang.errors import NeurolangError

REQUIREMENTS = ("lava-nc==0.10.0", "nir==1.0.8", "numpy<2", "h5py")
PYTHON_VERSION = "3.10"
STAMP = ".neurolang-lava"
ENV_VENV = "NEUROLANG_LAVA_VENV"
ENV_PYTHON = "NEUROLANG_PYTHON310"


class LavaEnvError(NeurolangError, RuntimeError):
    """The Lava environment is missing, broken, or cannot be created here."""


def package_root() -> Path:
    """The folder that holds the ``neurolang`` package (the repository in development)."""
    return Path(__file__).resolve().parents[2]


def venv_path(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``$NEUROLANG_LAVA_VENV``, else ``<repository>/.venv-lava``."""
    if path:
        return Path(path).expanduser().resolve()
    if os.environ.get(ENV_VENV):
        return Path(os.environ[ENV_VENV]).expanduser().resolve()
    return package_root() / ".venv-lava"


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _is_python310(exe: str) -> bool:
    try:
        out = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip() == PYTHON_VERSION


def find_python310() -> str:
    """A Python 3.10 interpreter: ``$NEUROLANG_PYTHON310``, ``python3.10`` on PATH (a working
    one: pyenv shims may exist without the version selected), or a pyenv installation."""
    candidates = []
    if os.environ.get(ENV_PYTHON):
        candidates.append(os.environ[ENV_PYTHON])
    if sys.version_info[:2] == (3, 10):
        candidates.append(sys.executable)
    which = shutil.which(f"python{PYTHON_VERSION}")
    if which:
        candidates.append(which)
    roots = [os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv")]
    for root in filter(None, roots):
        candidates += sorted(glob.glob(f"{root}/versions/{PYTHON_VERSION}*/bin/python3.10"),
                             reverse=True)
    candidates += ["/usr/bin/python3.10", "/usr/local/bin/python3.10"]
    for exe in candidates:
        if exe and _is_python310(exe):
            return exe
    raise LavaEnvError("Lava 0.10.0 needs Python 3.10 and none was found: install it (e.g. "
                       f"`pyenv install 3.10`) or set {ENV_PYTHON} to its path")


def _fingerprint() -> str:
    text = "\n".join((*REQUIREMENTS, str(package_root())))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def is_ready(venv: Path) -> bool:
    stamp = venv / STAMP
    return (venv_python(venv).exists() and stamp.is_file()
            and stamp.read_text().strip() == _fingerprint())


def _site_packages(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                          "['purelib'])"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def setup_lava(venv: str | os.PathLike | None = None, force: bool = False,
               log: Callable[[str], None] = print) -> Path:
    """Create (or re-use) the Lava environment; returns its path."""
    venv = venv_path(venv)
    if not force and is_ready(venv):
        log(f"[setup-lava] {venv} is ready")
        return venv
    from neurolang.outputs import OutputError, claim_folder

    try:  # `venv --clear` empties the folder: only an environment may be there
        claim_folder(venv, ["venv"], what="Lava environment folder", overwrite_flag=None)
    except OutputError as err:
        raise LavaEnvError(str(err)) from None
    python = find_python310()
    log(f"[setup-lava] creating {venv} with {python}")
    steps = [
        [python, "-m", "venv", "--clear", str(venv)],
        [str(venv_python(venv)), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", *REQUIREMENTS],
    ]
    for cmd in steps:
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise LavaEnvError(f"`{' '.join(cmd[:4])} ...` failed: {' | '.join(tail)}")
    site = _site_packages(venv_python(venv))
    (site / "neurolang.pth").write_text(f"{package_root()}\n")
    check = subprocess.run(
        [str(venv_python(venv)), "-c",
         "import lava.magma.core.run_configs, nir, h5py, numpy, sys; "
         "import neurolang.lava.plan, neurolang.lava.network, neurolang.lava.processes, "
         "neurolang.nir; "
         "assert 'torch' not in sys.modules, 'torch was imported on the Lava side'"],
        capture_output=True, text=True)
    if check.returncode != 0:
        tail = check.stderr.strip().splitlines()[-1:] or ["unknown error"]
        raise LavaEnvError(f"the new Lava environment does not work: {tail[0]}")
    (venv / STAMP).write_text(_fingerprint() + "\n")
    log(f"[setup-lava] done: {venv}")
    return venv


def require_lava(venv: str | os.PathLike | None = None) -> Path:
    """The Lava environment's Python, or :class:`LavaEnvError` telling how to create it."""
    path = venv_path(venv)
    if not is_ready(path):
        raise LavaEnvError(f"no Lava environment at {path}: run `neurolang setup-lava` "
                           "(creates it with Python 3.10, lava-nc 0.10.0, nir, h5py)")
    return venv_python(path)


def subprocess_env() -> dict[str, str]:
    """Environment for the runner: the package on PYTHONPATH, one thread per process."""
    env = dict(os.environ)
    root = str(package_root())
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    return env


__all__ = ["LavaEnvError", "REQUIREMENTS", "find_python310", "is_ready", "require_lava",
           "setup_lava", "subprocess_env", "venv_path", "venv_python"]
