"""Every command the README and docs show is one the project takes: the script or module exists, its command
line parses (options, choices, types) exactly as written, and the committed files it reads are in the
repository. The README's own commands also run, with tiny budgets, in the slow test at the end."""

import argparse
import importlib
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHARED = ROOT.parent / "shared" / "data"
ASSIGNMENT = re.compile(r"^([A-Z][A-Z0-9_]*)=(\S.*)$")


def _expand(text, variables):
    return re.sub(r"\$([A-Z][A-Z0-9_]*)", lambda m: variables.get(m[1], m[0]), text)


def doc_commands(paths=DOCS):
    """[(file name, words after "python")] of every python command in the bash blocks of ``paths``: lines joined
    at backslashes, comments dropped, the page's shell variables (``COMMON="..."``) expanded, ``&&`` split,
    environment assignments before the command dropped."""
    found = []
    for path in paths:
        variables = {}  # a page's variables hold in its later blocks too
        for block in re.findall(r"```bash\n(.*?)```", path.read_text(), re.S):
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                line = re.sub(r"(^|\s)#.*$", "", line).strip()
                assignment = ASSIGNMENT.match(line)
                if assignment and " python " not in line:
                    variables[assignment[1]] = _expand(shlex.split(assignment[2])[0], variables)
                    continue
                for part in line.split("&&"):
                    words = shlex.split(_expand(part, variables))
                    while words and ASSIGNMENT.match(words[0]):
                        words.pop(0)
                    if words[:1] == ["python"]:
                        found.append((path.name, words[1:]))
    return found


class _Parsed(Exception):
    def __init__(self, parser):
        self.parser = parser


def parser_of(target):
    """The argparse parser a script (``train.py``) or module (``experiments.study``) builds for its command line:
    its ``main`` is called and stopped at its first parse; abbreviated options are refused."""
    module = importlib.import_module(target.removesuffix(".py"))
    original = argparse.ArgumentParser.parse_known_args

    def caught(self, *args, **kwargs):
        raise _Parsed(self)

    argparse.ArgumentParser.parse_known_args = caught
    try:
        module.main([])
    except _Parsed as parsed:
        parsed.parser.allow_abbrev = False  # the docs write every option in full
        return parsed.parser
    finally:
        argparse.ArgumentParser.parse_known_args = original
    raise AssertionError(f"{target}: main() parsed no command line")


def beam_options():
    """Apache Beam's pipeline option names (dests), or None without Beam."""
    try:
        from apache_beam.options.pipeline_options import PipelineOptions
    except ImportError:
        return None
    return set(PipelineOptions([]).get_all_options())


def problems_of(words, parsers):
    """What is wrong with one documented command (``words`` after "python"): [] when it parses as written."""
    target, args = (words[1], words[2:]) if words[0] == "-m" else (words[0], words[1:])
    if target == "pytest":
        return []
    args = [arg for arg in args if arg != "..."]  # "python train.py ... --targets": options elided on purpose
    if target.endswith(".py") and not (ROOT / target).exists():
        return [f"{target} does not exist"]
    if target not in parsers:
        parsers[target] = parser_of(target)
    parser = parsers[target]
    problems = [f"{arg}: not in the repository" for arg in args if arg.startswith("results/") and "{" not in arg
                and not (ROOT / arg).exists()]  # fmt: skip
    try:
        parsed, extra = argparse.ArgumentParser.parse_known_args(parser, args)
    except SystemExit:
        return problems + [f"{target} refuses: {shlex.join(args)}"]
    if extra and target == "predict.py" and parsed.runner:  # Beam's options pass through
        known = beam_options()
        extra = [e for e in extra if e.startswith("--") and known is not None and e[2:].split("=")[0] not in known]
    if extra and target == "compare.py" and parsed.grid:  # train.py's options pass through to the grid's runs
        if "train.py" not in parsers:
            parsers["train.py"] = parser_of("train.py")
        try:
            _, extra = argparse.ArgumentParser.parse_known_args(parsers["train.py"], extra)
        except SystemExit:
            return problems + [f"train.py refuses what compare.py --grid passes on: {shlex.join(extra)}"]
    return problems + ([f"{target}: unknown {' '.join(extra)}"] if extra else [])


def test_the_docs_commands_are_found_with_their_variables_expanded(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        '```bash\nS=../data\nCOMMON="--manual-dir $S --tracker local"  # shared\npython train.py $COMMON \\\n'
        "    --seed 1   # a comment\npython -m experiments.collect a b && python compare.py --runs b\n"
        "TF_CONFIG='{\"a\": 1}' python train.py --strategy multiworker\npip install x\n```\n"
        "```python\npython not_a_command.py\n```\n"
    )
    assert doc_commands([page]) == [
        ("page.md", ["train.py", "--manual-dir", "../data", "--tracker", "local", "--seed", "1"]),
        ("page.md", ["-m", "experiments.collect", "a", "b"]),
        ("page.md", ["compare.py", "--runs", "b"]),
        ("page.md", ["train.py", "--strategy", "multiworker"]),
    ]


def test_a_wrong_option_choice_or_committed_path_is_caught():
    parsers = {}
    assert problems_of(["train.py", "--epochs", "2"], parsers) == []
    assert problems_of(["train.py", "--epoch", "2"], parsers) == ["train.py: unknown --epoch 2"]
    assert problems_of(["train.py", "--dataset", "buildings/nope"], parsers) == [
        "train.py refuses: --dataset buildings/nope"
    ]
    assert problems_of(["-m", "experiments.study", "results/nope"], parsers) == ["results/nope: not in the repository"]
    assert problems_of(["nope.py"], parsers) == ["nope.py does not exist"]
    assert problems_of(["compare.py", "--grid", "recipe", "--epochs", "2"], parsers) == []
    assert problems_of(["compare.py", "--grid", "recipe", "--epoch", "2"], parsers) == ["compare.py: unknown --epoch 2"]
    assert problems_of(["compare.py", "--grid", "recipe", "--arch", "nope"], parsers) == [
        "train.py refuses what compare.py --grid passes on: --arch nope"
    ]
    assert problems_of(["predict.py", "--model", "m", "--runner", "DirectRunner", "--direct_num_workers", "2"],
                       parsers) == []  # fmt: skip
    assert problems_of(["predict.py", "--model", "m", "--direct_num_workers", "2"], parsers) == [
        "predict.py: unknown --direct_num_workers"  # (its 2 is taken for an input)
    ]


def test_every_command_in_the_readme_and_docs_parses_as_written():
    commands = doc_commands()
    assert len(commands) > 60 and {name for name, _ in commands} >= {"README.md", "training.md", "experiments.md"}
    parsers, problems = {}, []
    for name, words in commands:
        problems += [f"{name}: python {shlex.join(words)}: {p}" for p in problems_of(words, parsers)]
    assert problems == []


@pytest.mark.slow  # trains on the synthetic set, the sample and Kampala, predicts and compares (~10 min)
@pytest.mark.skipif(not (SHARED / "buildings_sample").is_dir(), reason="../shared/data/buildings_sample is absent")
def test_the_readmes_commands_run_with_tiny_budgets(tmp_path):
    """The README's commands, as written but for a tiny budget and the placeholders filled with real files."""
    sample = SHARED / "buildings_sample"
    tiny = ["--epochs", "1", "--steps-per-epoch", "2", "--warmup-steps", "0", "--batch-size", "2",
            "--image-size", "64", "--tracker", "local"]  # fmt: skip
    run = tmp_path / "runs" / "first"
    scene = sample / "building_data" / "test" / "src" / "rio_3band_013022223130_Public_img53.tiff"
    test = sample / "building_data" / "test"
    places = {"runs/<run>": run, "runs/RUN": run, "runs/BASE": run, "scene.tif": scene, "~/buildings": sample,
              "my_area": sample, "scenes/": scene.parent, "test/src": test / "src", "test/label": test / "label",
              "tiles/*.tif": f"{scene.parent}/rio_*.tiff"}  # fmt: skip
    readme = [words for name, words in doc_commands([ROOT / "README.md"]) if words[:2] != ["-m", "pytest"]]
    ran = 0
    for index, words in enumerate(readme):
        if any(word in ("my_scenes", "roofs.gpkg") for word in words):
            continue  # scenes of the reader's own (4-band GeoTIFFs, a vector file): tests/test_bands.py, test_polygons
        words = [str(places.get(word, word)) for word in words if word != "..."]
        if words[0] == "train.py":
            out = run if index == 0 else tmp_path / "runs" / f"run{index}"
            data = tmp_path / "tfds" / ("polygons" if "buildings/polygons" in words else "kaggle")
            words += [*tiny, "--run-dir", str(out), "--data-dir", str(data)]
        if words[0] == "predict.py":
            words[words.index("--out") + 1] = str(tmp_path / "out" / str(index))
        if words[0] == "compare.py":
            words[words.index("--runs") + 1] = str(tmp_path / "runs")
            words.append("--no-predictions")
        done = subprocess.run([sys.executable, *words], cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"python {shlex.join(words)}\n{done.stderr[-3000:]}"
        ran += 1
    assert ran == len(readme) - 2  # all but the two with the reader's own files


# studies that print from committed files (the runs/ they name are read from --counts)
READ_ONLY = ("experiments.study", "experiments.shape_split", "experiments.level_split", "experiments.labels",
             "experiments.kampala")  # fmt: skip


def braces(word):
    """Bash's brace expansion of one word: ``f{0,1}_s{0,1}`` -> f0_s0, f0_s1, f1_s0, f1_s1."""
    match = re.search(r"\{([^{}]*,[^{}]*)\}", word)
    if not match:
        return [word]
    return [out for part in match[1].split(",") for out in braces(word[: match.start()] + part + word[match.end() :])]


def test_brace_expansion_follows_bash():
    assert braces("runs/f{0,1}_s{0,1}") == ["runs/f0_s0", "runs/f0_s1", "runs/f1_s0", "runs/f1_s1"]
    assert braces("results/questions") == ["results/questions"]


@pytest.mark.slow  # every study the docs show that reads committed files, run as written (~3 min)
@pytest.mark.skipif(not (SHARED / "buildings_sample").is_dir(), reason="../shared/data/buildings_sample is absent")
def test_the_docs_studies_of_committed_runs_print_their_tables():
    ran = 0
    for name, words in doc_commands():
        if words[0] != "-m" or words[1] not in READ_ONLY or "--run" in words:
            continue
        if any(word.startswith("runs/") for word in words) and "--counts" not in words:
            continue  # needs the runs' models, which are not committed
        command = [sys.executable, *[w for word in words for w in braces(word)]]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{name}: {shlex.join(command[1:])}\n{done.stderr[-2000:]}"
        rows = [line for line in done.stdout.splitlines() if re.match(r"^\| [^-].*\d.*\|$", line)]
        assert len(rows) >= 2, f"{name}: {shlex.join(command[1:])} printed no table"  # two rows of numbers
        ran += 1
    assert ran == 22
