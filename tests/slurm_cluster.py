"""A throw-away one-node SLURM cluster on localhost, for the `slurm` test suite.

It installs nothing: it needs Debian's ``slurm-wlm`` and ``munge`` (``slurmctld``,
``slurmd``, ``munged``, ``sbatch``, ``squeue``) on PATH and root, which CI has. Everything
it writes (munge key and socket, slurm.conf, state, spool, logs) lives in one temporary
folder, on ports of its own, so it never touches a system cluster. Client commands find it
through the ``SLURM_CONF`` variable, which `LocalSlurmCluster.env` provides.

Facts this relies on (Debian 12, SLURM 22.05): ``munged --force`` runs as root with a key
file and socket anywhere; ``AuthInfo=socket=...`` points SLURM at that socket; without an
accounting database ``squeue`` is the only status source, so ``MinJobAge`` is raised to keep
finished jobs visible to it.

Why the ``bin/`` wrappers: inside a job, Snakemake's ``slurm-jobstep`` executor strips every
``SLURM_*`` variable except the job's identity before its nested ``srun``, so ``SLURM_CONF``
is lost and ``srun`` looks for ``/etc/slurm/slurm.conf`` (which a test must not write).
`LocalSlurmCluster.env` therefore puts a folder first on ``PATH`` whose ``srun``, ``sbatch``,
``squeue``, ... set ``SLURM_CONF`` and exec the real program; ``sbatch`` exports ``PATH`` to
the job, so nested calls find the cluster too.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

REQUIRED_PROGRAMS = ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "sinfo", "srun", "scancel")
# Client programs wrapped so they find this cluster's slurm.conf without SLURM_CONF.
CLIENT_PROGRAMS = ("srun", "sbatch", "squeue", "scancel", "sinfo", "scontrol", "sacct", "salloc")


def missing_programs() -> list[str]:
    return [p for p in REQUIRED_PROGRAMS if shutil.which(p) is None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    with open("/proc/meminfo") as f:
        total_kb = int(f.readline().split()[1])
    return max(1024, total_kb // 1024 - 2048)


class LocalSlurmCluster:
    """Start munged, slurmctld and slurmd in ``root``; stop them with `stop`."""

    def __init__(self, root: Path, partition: str = "debug") -> None:
        self.root = Path(root)
        self.partition = partition
        self.conf = self.root / "slurm.conf"
        self.bin = self.root / "bin"
        self.hostname = socket.gethostname().split(".")[0]
        self._pid_files = [
            self.root / "slurmd.pid",
            self.root / "slurmctld.pid",
            self.root / "munge" / "munged.pid",
        ]

    @property
    def env(self) -> dict[str, str]:
        """The caller's environment plus this cluster's client wrappers and SLURM_CONF."""
        return {
            **os.environ,
            "SLURM_CONF": str(self.conf),
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def _write_client_wrappers(self) -> None:
        self.bin.mkdir(parents=True, exist_ok=True)
        for name in CLIENT_PROGRAMS:
            real = shutil.which(name)
            if real is None:
                continue
            wrapper = self.bin / name
            wrapper.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec "{real}" "$@"\n')
            wrapper.chmod(0o755)

    def _write_config(self) -> None:
        munge = self.root / "munge"
        for sub in ("state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        lines = [
            "ClusterName=asymcltest",
            # name(address): no DNS lookup of the host name (containers often lack one)
            f"SlurmctldHost={self.hostname}(127.0.0.1)",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={munge / 'munge.sock'}",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            f"StateSaveLocation={self.root / 'state'}",
            f"SlurmdSpoolDir={self.root / 'spool'}",
            f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.root / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={self.root / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "JobAcctGatherType=jobacct_gather/none",
            # squeue is the only status source without accounting: keep finished jobs
            # listed long enough for the executor to see how they ended.
            "MinJobAge=600",
            "ReturnToService=2",
            "MpiDefault=none",
            f"NodeName={self.hostname} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} "
            f"RealMemory={_memory_mb()} State=UNKNOWN",
            f"PartitionName={self.partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")

    def _start_munge(self) -> None:
        munge = self.root / "munge"
        munge.mkdir(mode=0o711, parents=True, exist_ok=True)
        key = munge / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        subprocess.run(
            [
                "munged",
                "--force",
                f"--key-file={key}",
                f"--socket={munge / 'munge.sock'}",
                f"--pid-file={munge / 'munged.pid'}",
                f"--log-file={munge / 'munged.log'}",
                f"--seed-file={munge / 'munged.seed'}",
            ],
            check=True,
        )

    def start(self, timeout: float = 60.0) -> None:
        self._write_config()
        self._write_client_wrappers()
        self._start_munge()
        subprocess.run(["slurmctld", "-f", str(self.conf)], check=True, env=self.env)
        subprocess.run(["slurmd", "-f", str(self.conf)], check=True, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run(
                ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=self.env,
                timeout=30,
            )
            if out.returncode == 0 and out.stdout.strip() in {"idle", "mixed"}:
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(
            f"the local SLURM node did not become idle within {timeout:.0f} s; "
            f"see the logs in {self.root / 'log'}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel this cluster's jobs, then stop slurmd, slurmctld and munged (in that order)."""
        if self.conf.exists():
            try:
                subprocess.run(["scancel", "--full", "--partition", self.partition],
                               env=self.env, capture_output=True, timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                pass  # the daemons may already be gone
        pids = []
        for pid_file in self._pid_files:
            try:
                pid = int(pid_file.read_text().strip())
                os.kill(pid, signal.SIGTERM)
                pids.append(pid)
            except (FileNotFoundError, ValueError, ProcessLookupError):
                continue
        deadline = time.monotonic() + timeout
        for pid in pids:
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
