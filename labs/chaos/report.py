"""The report of a chaos run: a text table per fault kind and a timeline picture (PNG, matplotlib Agg).

Table columns: faults (how many hit the active), double-active s, nobody-active s, stale s (a holder whose
process is dead or frozen), client-failure s, takeover median/max vs the bound, heal median/max, flaps
(changes of the single active), broken rules. The timeline has one band per node (green while it is
active, grey hatched while it is a stale holder), a client band (red where the client failed), and each fault
shaded over its window with its id and kind.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from labs.chaos.checker import NO_FAULT, CheckResult, median
from labs.chaos.history import Record


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:.0f}"


def text_report(result: CheckResult) -> str:
    p = result.promise
    head = ["kind", "faults(hit)", "double s", "nobody s", "stale s", "client s", "takeover ms med/max",
            "bound ms", "heal ms med/max", "flaps", "broken"]
    rows = [head]
    order = sorted(result.stats, key=lambda k: (k == NO_FAULT, k))
    for k in order:
        st = result.stats[k]
        tk = f"{_ms(median(st.takeovers))}/{_ms(max(st.takeovers, default=None))}" if st.takeovers else "-"
        if st.resumed:
            tk += f" ({st.resumed} resumed)"
        hl = f"{_ms(median(st.heals))}/{_ms(max(st.heals, default=None))}" if st.heals else "-"
        rows.append([k, f"{st.faults}({st.hit_active})" if k != NO_FAULT else "-", f"{st.double_s:.3f}",
                     f"{st.nobody_s:.3f}", f"{st.stale_s:.3f}", f"{st.client_fail_s:.3f}", tk, _ms(st.bound), hl,
                     str(st.flaps), str(st.violations)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [f"{p.system} ({p.mode}): {result.samples} samples over {result.span:.1f} s, max gap "
             f"{result.max_gap * 1000:.0f} ms, {len(result.faults)} faults, {result.handovers} handover blips "
             f"<= {p.handover_grace * 1000:.0f} ms"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if result.violations:
        lines.append(f"BROKEN: {len(result.violations)} rule(s)")
        lines += ["  " + v.line() for v in result.violations]
    else:
        lines.append("promise kept: no rule broken")
    return "\n".join(lines)


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
              "netem_dup": "tab:cyan"}
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
    for i, w in enumerate(result.faults):
        end = w.end if w.end is not None else (samples[-1]["t"] if samples else w.start)
        ax.axvspan(w.start, end, color=colors.get(w.kind, "gold"), alpha=0.18, lw=0)
        label = f"#{w.fault.id} {w.kind}\n{w.target}" + (f"->{w.peer}" if w.peer else "")
        ax.text(w.start, top + 0.45 * (i % 2), label, fontsize=6, va="bottom")
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
