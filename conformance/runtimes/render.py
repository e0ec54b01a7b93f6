"""The runtime matrix as tables: one per target, rows = attention heads and linear kinds,
columns = (TP, device). A cell shows the kernel (or the verdict) and a note number; each note
gives the verdict, the rule id, the runtime source (file and function) and why. Used by the
console (``text``), the Markdown card and the HTML page (``tables``)."""
from __future__ import annotations

MARKS = {"loads": "", "fallback": "~", "refuses": "REFUSES", "misreads": "MISREADS", "unknown": "?"}


def _label(c: dict) -> str:
    if c["verdict"] == "loads":
        return c["kernel"] or "ok"
    if c["verdict"] == "fallback":
        return f"~{c['kernel']}"
    return MARKS[c["verdict"]]


def row_name(r: dict) -> str:
    if "n" not in r:
        return f"{r['kind']} ({r['heads']} q / {r['kv_heads']} kv)"
    merged = f" in {'+'.join(r['merged'])}" if r["merged"] else ""
    sym = "sym" if r["symmetric"] else "asym"
    return f"{r['kind']}{merged} {r['n']}x{r['k']} g{r['group']} w{r['bits']} {sym} x{r['count']}"


def tables(t: dict, tps: list[int], devices: list[str]) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows of cells, notes) for one target."""
    notes: dict[tuple, int] = {}
    head = ["layers"] + [f"TP{tp} {d}" for tp in tps for d in devices]
    body = []
    for r in t["rows"]:
        line = [row_name(r)]
        for c in r["cells"]:
            key = (c["verdict"], c["kernel"], c["rule"], c["source"], c["why"], c["checked"])
            n = notes.setdefault(key, len(notes) + 1)
            line.append(f"{_label(c)} [{n}]")
        body.append(line)
    text = [f"[{n}] {v}{' ' + k if k else ''}: {rule} ({src}); {why}; check: {chk}"
            for (v, k, rule, src, why, chk), n in notes.items()]
    return head, body, text


def _fixed(head: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    return ["  ".join(x[i].ljust(widths[i]) for i in range(len(head))).rstrip() for x in [head, *body]]


def text(section: dict) -> str:
    out = []
    for t in section["targets"]:
        head, body, notes = tables(t, section["tp"], section["devices"])
        verdicts = ", ".join(f"TP{c['tp']} {c['device']}: {c['verdict']}" for c in t["configs"])
        out += [f"== {t['target']} {t['version']} ({t['format']}): {verdicts}", *_fixed(head, body), *notes, ""]
    return "\n".join(out)
