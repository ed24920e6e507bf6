"""The README's result blocks, regenerated from the committed runs of a study.

A block sits between two markers; the first names the study folder it is made from:

    <!-- compare.py --runs results/questions --readme README.md: begin -->
    ...
    <!-- compare.py --readme: end -->

(``--readme README.md (table): begin``: the table without the answer lines.)
``python compare.py --runs results/questions --readme README.md`` rewrites that block from the
runs' small files (results.json), so a fresh clone regenerates it byte for byte, and
tests/test_readme_results.py checks that the README holds exactly what its runs give.

A study's table is kept the same way by ``experiments.study`` (``--readme``; its ``study_blocks``).
"""

import re
from pathlib import Path

from experiments.report import markdown_table, summary_rows

BEGIN = "<!-- compare.py --runs {runs} --readme {readme}: begin -->"
END = "<!-- compare.py --readme: end -->"
TABLE_ONLY = " (table)"  # after the readme's name in the first marker: the block holds the table, not the answers
BLOCK = re.compile(
    r"<!-- compare\.py --runs (?P<runs>\S+) --readme (?P<readme>\S+)(?P<table> \(table\))?: begin -->\n"
    r"(?P<body>.*?)" + re.escape(END),
    re.S,
)
COLUMNS = (
    ("arch", "arch"),
    ("encoder", "encoder"),
    ("weights", "weights"),
    ("iou", "held-out IoU"),
    ("f1", "building F1"),
    ("n", "runs"),
    ("gmacs", "GMACs"),
    ("predict_mp_per_sec", "predict MP/s"),
)


def study_block(runs_dir, answers=True):
    """The block's Markdown: what was run, one row per model (mean ± sd), one answer line per question and score
    (``answers``; a block whose marker ends in "(table)" leaves them to the page that cites it)."""
    from experiments.aggregate import aggregate, main_recipe, score_answer_lines, short_name
    from experiments.report import SCORES, load_runs

    rows, _ = load_runs(runs_dir)
    if not rows:
        raise SystemExit(f"compare.py --readme: no finished run in {runs_dir}; nothing to write")
    table = aggregate(rows)
    recipe = main_recipe(table)
    places = sorted({row["heldout_label"] for row in rows})
    seeds = sorted({row.get("seed") for row in rows if isinstance(row.get("seed"), int)})
    sizes = sorted({row.get("image_size") for row in rows if row.get("image_size")})
    steps = sorted({(row.get("recipe") or {}).get("steps") for row in rows} - {None})
    batch = sorted({(row.get("recipe") or {}).get("batch_size") for row in rows} - {None})
    budget = ", ".join(f"{s} steps" + (f" of {batch[0]} crops" if len(batch) == 1 else "") for s in steps)
    size = "/".join(f"{s} x {s}" for s in sizes)
    head = (
        f"{len(rows)} runs: {_count(len(places), 'set')} of held-out places x {_count(len(seeds), 'seed')} "
        f"({', '.join(map(str, seeds))}); "
        f"each {budget} at {size}; recipe {recipe}. Scores on the held-out places only; mean ± sd over runs."
    )
    body = markdown_table(summary_rows(table), COLUMNS)
    lines = score_answer_lines(rows, recipe, tuple(SCORES)) if answers else []
    missing = [f"{short_name(m)}: {m['n']}" for m in table if m["n"] < len(places) * len(seeds)]
    parts = [head, body, "\n".join(f"- {line}" for line in lines)]
    if missing:
        parts.append(f"Not finished yet (runs so far): {', '.join(missing)}; the command above continues the grid.")
    return "\n\n".join(part for part in parts if part) + "\n"


def blocks(text):
    """[(runs folder, readme name, body, with answers)] of every block in ``text``."""
    return [(m["runs"], m["readme"], m["body"], not m["table"]) for m in BLOCK.finditer(text)]


def update_readme(readme, runs_dir):
    """Rewrite the block of ``runs_dir`` in ``readme``; returns whether the file changed."""
    readme = Path(readme)
    text = readme.read_text()
    wanted = Path(runs_dir).resolve()
    found = [m for m in BLOCK.finditer(text) if (readme.parent / m["runs"]).resolve() == wanted]
    if not found:
        raise SystemExit(
            f"compare.py --readme: {readme} has no block for {runs_dir}; put these two lines where it belongs:\n"
            f"{BEGIN.format(runs=runs_dir, readme=readme.name)}\n{END}"
        )
    new = text
    for match in reversed(found):
        body = study_block(readme.parent / match["runs"], answers=not match["table"])
        new = new[: match.start("body")] + body + new[match.end("body") :]
    if new != text:
        readme.write_text(new)
    return new != text


def _count(n, noun):
    return f"{n} {noun}{'' if n == 1 else 's'}"
