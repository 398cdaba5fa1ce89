"""Read back the LHE files of earlier MG5 side-by-side runs with MG5's ``lhe_parser`` and with ``pylhe``.

    MG5_HOME=/work/mg5 python benchmarks/lhe_readback.py benchmarks/out/mg5_side_by_side_current_10k.json ...

For every process and launch (classic, madnis) recorded in the given JSON files whose LHE file still exists: events
counted by ``<event>`` tags, by ``lhe_parser`` and by ``pylhe``, and whether all weights are equal. Writes
``benchmarks/out/lhe_readback.json`` and prints a table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from mg5_side_by_side import lhe_init, readback  # noqa: E402


def main(paths: list[str]) -> None:
    rows = []
    for f in paths:
        for name, v in json.loads(Path(f).read_text()).items():
            for mode in ("classic", "madnis"):
                lhe = Path(v.get(mode, {}).get("lhe", ""))
                if not lhe.is_file():
                    continue
                rows.append({"file": f, "process": v["process"], "nevents": v["nevents"], "seed": v["seed"],
                             "mode": mode, "lhe": str(lhe), "n_event_tags": lhe_init(lhe)[2], **readback(lhe)})
    out = HERE / "out" / "lhe_readback.json"
    out.write_text(json.dumps(rows, indent=2))
    print("| process | seed | launch | requested | `<event>` tags | lhe_parser | pylhe | unit weights |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['process']} | {r['seed']} | {r['mode']} | {r['nevents']} | {r['n_event_tags']} | "
              f"{r['n_events_lhe_parser']} | {r['n_events_pylhe']} | {r['unit_weights']} |")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
