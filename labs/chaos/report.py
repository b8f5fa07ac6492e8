"""The picture of a chaos run: a timeline (PNG, matplotlib Agg); the text table is the checker's
(``labs.chaos.checker.text_report``).

The timeline has one band per node (green while it is
active, grey hatched while it is a stale holder), a client band (red where the client failed), and each fault
shaded over its window with its id and kind (a run with more than ``LABELLED`` faults, where the labels would
run into each other, gets a legend of the kinds' colours instead).
"""

from __future__ import annotations

import itertools
from pathlib import Path

from labs.chaos.checker import CheckResult
from labs.chaos.history import Record

LABELLED = 30  # label each fault up to this many; a legend of the kinds beyond


def timeline_png(record: Record, result: CheckResult, path: Path | str, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = record.samples
    nodes = list(record.meta.get("nodes") or sorted({n for s in samples for n in s["active"]}))
    has_client = any("client_ok" in s for s in samples)
    bands = [*nodes, *(["client"] if has_client else [])]
    fig, ax = plt.subplots(figsize=(14, 1.2 + 0.6 * len(bands)))
    colors = {"crash": "tab:red", "freeze": "tab:blue", "clean_stop": "tab:gray", "cut_one_way": "tab:orange",
              "cut_both": "tab:purple", "netem_loss": "tab:brown", "netem_delay": "tab:olive",
              "netem_dup": "tab:cyan", "loss": "tab:pink", "witness_down": "tab:olive", "daemon_kill": "black",
              "node_restart": "tab:brown"}
    for i, name in enumerate(bands):
        y = len(bands) - 1 - i
        act, stale, fail = [], [], []
        for a, b in itertools.pairwise(samples):
            span = (a["t"], b["t"] - a["t"])
            if name == "client":
                if a.get("client_ok") is False:
                    fail.append(span)
            elif name in a["active"]:
                act.append(span)
            elif name in (a.get("stale") or ()):
                stale.append(span)
        if act:
            ax.broken_barh(act, (y - 0.35, 0.7), facecolors="tab:green")
        if stale:
            ax.broken_barh(stale, (y - 0.2, 0.4), facecolors="#e0e0e0", edgecolors="tab:gray", hatch="///",
                          linewidth=0)
        if fail:
            ax.broken_barh(fail, (y - 0.35, 0.7), facecolors="tab:red")
    top = len(bands) - 0.5
    labelled = len(result.faults) <= LABELLED
    kinds: dict[str, str] = {}
    for i, w in enumerate(result.faults):
        end = w.end if w.end is not None else (samples[-1]["t"] if samples else w.start)
        kinds[w.kind] = colors.get(w.kind, "gold")
        ax.axvspan(w.start, end, color=kinds[w.kind], alpha=0.18, lw=0)
        if labelled:
            label = f"#{w.fault.id} {w.kind}\n{w.target}" + (f"->{w.peer}" if w.peer else "")
            ax.text(w.start, top + 0.45 * (i % 2), label, fontsize=6, va="bottom")
    if not labelled and kinds:
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(color=c, alpha=0.4, label=k) for k, c in sorted(kinds.items())],
                  loc="upper center", ncol=min(len(kinds), 9), fontsize=7, frameon=False)
    for v in result.violations:
        ax.axvspan(v.start, max(v.end, v.start + 0.05), ymin=0, ymax=0.04, color="black")
    ax.set_yticks(range(len(bands)), list(reversed(bands)))
    ax.set_ylim(-0.6, top + 1.4)
    ax.set_xlabel("seconds since the recording started")
    status = "promise kept" if result.ok else f"{len(result.violations)} rule(s) broken"
    ax.set_title(title or f"{result.promise.system}: who is active (green; grey hatched = stale holder); {status}")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
