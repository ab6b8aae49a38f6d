"""`portaflow site check` on a SLURM site: the profile's partitions, limits, accounts and QOS against what
`scontrol show partition -o`, `scontrol show node -o` and `sacctmgr show assoc` report.

Pure functions over the commands' text (the adapter runs the commands), so that the rules are tested on output captured
from a real cluster (tests/unit/test_slurm_compare.py). The rule for a limit: the profile promising MORE than the site
gives is wrong (the plan would send a job SLURM refuses or never starts); promising less is allowed (a profile may
keep a margin), and is reported as passed with the site's value beside it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from portaflow.schedulers.base import PASSED, UNCHECKED, WRONG, SiteFinding
from portaflow.spec.site import Partition, SiteProfile
from portaflow.units import describe_memory, describe_walltime

RECORD_FIELD = re.compile(r"(?:^|\s)([A-Za-z][\w/:.]*)=(\S*)")


def parse_records(text: str) -> list[dict[str, str]]:
    """`scontrol show partition|node -o` (one record a line) -> one Key -> value dict per record. Values may hold '='
    (`TRES=cpu=8,mem=16G`): a key starts only after a space. A value with spaces (`OS=Linux 6.1 ...`) keeps its first
    word only; none of the fields read here has spaces."""
    records = []
    for line in text.splitlines():
        if not line.strip():
            continue
        record: dict[str, str] = {}
        for match in RECORD_FIELD.finditer(line.strip()):
            record.setdefault(match.group(1), match.group(2))
        records.append(record)
    return records


def slurm_seconds(value: str) -> int | None:
    """SLURM's time limit (`UNLIMITED`, `1-00:00:00`, `01:00:00`, `30:00`, `45`) -> seconds; None for no limit."""
    text = value.strip()
    if text.upper() in ("UNLIMITED", "INFINITE", "NONE", ""):
        return None
    days, _, clock = text.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    if len(parts) == 1:  # minutes
        seconds = parts[0] * 60
    elif len(parts) == 2:  # MM:SS
        seconds = parts[0] * 60 + parts[1]
    else:
        seconds = parts[0] * 3600 + parts[1] * 60 + parts[2]
    return int(days or 0) * 86400 + seconds


def slurm_number(value: str | None) -> int | None:
    """An integer field (`MaxCPUsPerNode=1`, `RealMemory=8192`); None for UNLIMITED or anything not a number."""
    return int(value) if value and value.isdigit() else None


def gres_gpus(gres: str) -> dict[str | None, int]:
    """A node's `Gres=` -> GPU model (None: untyped) -> count: `gpu:2` -> {None: 2}; `gpu:a100:4(S:0-1),gpu:v100:2` ->
    {'a100': 4, 'v100': 2}; `(null)` -> {}. Other GRES (`shard`, `mps`) are left out."""
    out: dict[str | None, int] = {}
    for item in re.split(r",(?![^(]*\))", gres or ""):
        words = re.sub(r"\(.*\)$", "", item.strip()).split(":")
        if words[0] != "gpu" or len(words) < 2:
            continue
        model, count = (None, words[1]) if len(words) == 2 else (words[1], words[2])
        number = re.match(r"\d+", count)
        if number:
            out[model] = out.get(model, 0) + int(number.group())
    return out


@dataclass
class Association:
    """One row of `sacctmgr -nP show assoc user=USER format=cluster,account,qos`."""

    cluster: str
    account: str
    qos: list[str] = field(default_factory=list)


def parse_associations(text: str) -> list[Association]:
    """`cluster|account|qos1,qos2` rows -> Associations (a row without an account, the user's own line, is left out)."""
    out = []
    for line in text.splitlines():
        cluster, _, rest = line.strip().partition("|")
        account, _, qos = rest.partition("|")
        if account:
            out.append(Association(cluster, account, [q for q in qos.split(",") if q]))
    return out


def _finding(what: str, key: str, promised: int, given: int | None, show: Iterable[object], why: str = "") -> SiteFinding:
    """`promised` (the profile's) against `given` (the site's; None: no limit): wrong when the profile promises more."""
    shown = [str(s) for s in show]
    if given is not None and promised > given:
        return SiteFinding(what, WRONG, key, shown[0], shown[1], why)
    return SiteFinding(what, PASSED, key, shown[0], shown[1] if given is not None else "no limit", why)


def compare_partition(name: str, part: Partition, slurm_names: list[str], partitions: dict[str, dict[str, str]],
                      nodes: list[dict[str, str]]) -> list[SiteFinding]:
    """One profile partition against SLURM's partitions of these names (`slurm_partition`, or the key) and their nodes."""
    key = f"partitions.{name}"
    missing = [n for n in slurm_names if n not in partitions]
    if missing:
        return [SiteFinding(f"partition {name} exists", WRONG, f"{key}.slurm_partition" if part.slurm_partition else key,
                            f"partition {', '.join(missing)}",
                            f"no such partition (partitions: {', '.join(sorted(partitions)) or 'none'})")]
    found = [SiteFinding(f"partition {name} exists", PASSED, key, ", ".join(slurm_names), ", ".join(slurm_names))]
    # several SLURM partitions behind one profile partition: a job may land in any, so each must give what is promised
    for slurm_name in slurm_names:
        record = partitions[slurm_name]
        members = [n for n in nodes if slurm_name in n.get("Partitions", "").split(",")]
        where = f"partition {slurm_name}" + (f" (for {name})" if slurm_name != name else "")
        max_time = slurm_seconds(record.get("MaxTime", "UNLIMITED"))
        found.append(_finding(f"{where}: max time", f"{key}.max_walltime", part.max_walltime, max_time,
                              [describe_walltime(part.max_walltime), f"MaxTime={record.get('MaxTime')}"]))
        max_nodes = [n for n in (slurm_number(record.get("MaxNodes")), slurm_number(record.get("TotalNodes"))) if n is not None]
        found.append(_finding(f"{where}: nodes per job", f"{key}.max_nodes", part.max_nodes, min(max_nodes) if max_nodes else None,
                              [part.max_nodes, f"{min(max_nodes)} (MaxNodes={record.get('MaxNodes')}, TotalNodes={record.get('TotalNodes')})"
                               if max_nodes else ""]))
        if not members:
            found.append(SiteFinding(f"{where}: node limits", UNCHECKED, key, why=f"scontrol lists no node in partition {slurm_name}"))
            continue
        cap = slurm_number(record.get("MaxCPUsPerNode"))
        cores = [min(c, cap) if cap else c for c in (slurm_number(n.get("CPUEfctv") or n.get("CPUTot")) for n in members) if c is not None]
        if cores:
            found.append(_finding(f"{where}: cores per node", f"{key}.cores_per_node", part.cores_per_node, max(cores),
                                  [part.cores_per_node, f"{_span(cores)}" + (f" (MaxCPUsPerNode={cap})" if cap else "")]))
        mem_cap = slurm_number(record.get("MaxMemPerNode"))
        memory = [min(m, mem_cap) if mem_cap else m for m in (slurm_number(n.get("RealMemory")) for n in members) if m is not None]
        if memory:
            found.append(_finding(f"{where}: memory per node", f"{key}.memory_per_node", part.memory_per_node, max(memory),
                                  [describe_memory(part.memory_per_node), f"{describe_memory(max(memory))} (RealMemory"
                                   + (f", MaxMemPerNode={mem_cap}" if mem_cap else "") + ")"]))
        per_cpu = slurm_number(record.get("MaxMemPerCPU"))
        if part.max_memory_per_core is not None and per_cpu is not None:
            found.append(_finding(f"{where}: memory per core", f"{key}.max_memory_per_core", part.max_memory_per_core, per_cpu,
                                  [describe_memory(part.max_memory_per_core), f"{describe_memory(per_cpu)} (MaxMemPerCPU)"]))
        gpus = [gres_gpus(n.get("Gres", "")) for n in members]
        most = max((sum(g.values()) for g in gpus), default=0)
        gres_text = ", ".join(sorted({n.get("Gres", "(null)") for n in members}))
        if part.gpus_per_node:
            found.append(_finding(f"{where}: GPUs per node", f"{key}.gpus_per_node", part.gpus_per_node, most,
                                  [part.gpus_per_node, f"{most} (Gres={gres_text})"]))
        models = sorted({m for g in gpus for m in g if m})
        wanted = [("gpu_models", m) for m in part.gpu_models] + ([("default_gpu_model", part.default_gpu_model)] if part.default_gpu_model else [])
        for field_name, model in wanted:
            if model in models:
                found.append(SiteFinding(f"{where}: GPU model {model}", PASSED, f"{key}.{field_name}", model, f"Gres={gres_text}"))
            else:
                found.append(SiteFinding(f"{where}: GPU model {model}", WRONG, f"{key}.{field_name}", f"GPU model {model}",
                                         f"its nodes' GPU models: {', '.join(models) or 'none named'} (Gres={gres_text})"))
        features = sorted({f for n in members for f in n.get("AvailableFeatures", "").split(",") if f and f != "(null)"})
        for word in _constraint_words(part.constraint):
            if word not in features:
                found.append(SiteFinding(f"{where}: node feature {word}", WRONG, f"{key}.constraint", f"--constraint with {word}",
                                         f"its nodes' features: {', '.join(features) or 'none'}"))
    return found


def _span(values: list[int]) -> str:
    low, high = min(values), max(values)
    return str(high) if low == high else f"{low}-{high} (by node)"


def _constraint_words(constraint: str | None) -> list[str]:
    """The feature names of a --constraint expression (`(intel|amd)&ib*2` -> intel, amd, ib)."""
    if not constraint:
        return []
    return [w for w in re.split(r"[&|()\[\]*,]+", constraint) if w and not w.isdigit()]


@dataclass
class AccountUse:
    """An account and the QOS the profile uses with it, and the keys that name each (for the finding)."""

    account: str | None
    account_key: str
    qos: dict[str, str] = field(default_factory=dict)
    """QOS name -> the key that names it."""
    clusters: list[str] = field(default_factory=list)


def account_uses(site: SiteProfile, names: list[str], local_cluster: str | None) -> list[AccountUse]:
    """What the profile charges jobs to, per partition: the partition's account or the site's, with its QOS (the
    partition's `qos_by_walltime` names, `qos`, or `slurm.qos`), on its clusters (or the local one)."""
    uses: dict[tuple[str | None, str], AccountUse] = {}
    for name in names:
        part = site.partitions[name]
        account, account_key = (part.account, f"partitions.{name}.account") if part.account else (site.account, "account")
        clusters = tuple(part.clusters.split(",")) if part.clusters else ((local_cluster,) if local_cluster else ())
        use = uses.setdefault((account, ",".join(clusters)), AccountUse(account, account_key, clusters=list(clusters)))
        if part.qos_by_walltime:
            for qos in part.qos_by_walltime:
                use.qos.setdefault(qos, f"partitions.{name}.qos_by_walltime.{qos}")
        elif part.qos:
            use.qos.setdefault(part.qos, f"partitions.{name}.qos")
        elif site.slurm.qos:
            use.qos.setdefault(site.slurm.qos, "slurm.qos")
    return list(uses.values())


def compare_associations(user: str, uses: list[AccountUse], associations: list[Association]) -> list[SiteFinding]:
    """Each account the profile names exists for `user` on its cluster(s), and each QOS is allowed with it."""
    found = []
    for use in uses:
        rows = [a for a in associations if not use.clusters or a.cluster in use.clusters]
        where = f" on cluster {','.join(use.clusters)}" if use.clusters else ""
        if use.account is not None:
            rows = [a for a in rows if a.account == use.account]
            mine = sorted({a.account for a in associations if not use.clusters or a.cluster in use.clusters})
            if rows:
                found.append(SiteFinding(f"account {use.account}", PASSED, use.account_key, use.account, f"an account of {user}{where}"))
            else:
                found.append(SiteFinding(f"account {use.account}", WRONG, use.account_key, f"account {use.account}",
                                         f"{user}'s accounts{where}: {', '.join(mine) or 'none'} (sacctmgr show assoc)"))
                continue
        allowed = sorted({q for a in rows for q in a.qos})
        for qos, key in use.qos.items():
            whose = f"account {use.account}" if use.account else f"{user}'s associations"
            if qos in allowed:
                found.append(SiteFinding(f"QOS {qos}", PASSED, key, qos, f"allowed for {whose}{where}"))
            else:
                found.append(SiteFinding(f"QOS {qos}", WRONG, key, f"QOS {qos}", f"QOS allowed for {whose}{where}: "
                                         f"{', '.join(allowed) or 'none'} (sacctmgr show assoc)"))
    return found


def compare_allowed(name: str, slurm_names: list[str], partitions: dict[str, dict[str, str]], use: AccountUse) -> list[SiteFinding]:
    """A partition that admits only some accounts or QOS (`AllowAccounts`, `DenyAccounts`, `AllowQos`) admits the profile's."""
    found = []
    for slurm_name in (n for n in slurm_names if n in partitions):
        record = partitions[slurm_name]
        allow = record.get("AllowAccounts", "ALL")
        deny = [a for a in record.get("DenyAccounts", "").split(",") if a]
        if use.account and ((allow != "ALL" and use.account not in allow.split(",")) or use.account in deny):
            found.append(SiteFinding(f"partition {slurm_name} admits account {use.account}", WRONG, use.account_key,
                                     f"account {use.account}", f"partition {slurm_name} has AllowAccounts={allow}"
                                     + (f" DenyAccounts={','.join(deny)}" if deny else "")))
        allow_qos = record.get("AllowQos", "ALL")
        for qos, key in use.qos.items():
            if allow_qos != "ALL" and qos not in allow_qos.split(","):
                found.append(SiteFinding(f"partition {slurm_name} admits QOS {qos}", WRONG, key, f"QOS {qos}",
                                         f"partition {slurm_name} has AllowQos={allow_qos}"))
    return found
