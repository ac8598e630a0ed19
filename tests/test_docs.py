"""Generated documentation stays in step with the code, and the README contract holds."""
from pathlib import Path

from blinasim.parameter_docs import render_parameter_docs

ROOT = Path(__file__).resolve().parents[1]


def test_parameters_md_is_up_to_date():
    assert (ROOT / "docs" / "parameters.md").read_text() == render_parameter_docs(), (
        "docs/parameters.md is stale: python -c \"from blinasim.parameter_docs import "
        "render_parameter_docs; open('docs/parameters.md','w').write(render_parameter_docs())\"")


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci_command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci_command in readme, "the last line of .ci/run must be the README's test command"


def test_parameters_md_covers_every_mechanism_section():
    import dataclasses

    from blinasim.parameter_docs import MECHANISM_SECTIONS
    from blinasim.schema import Scenario
    sections = {f.name for f in dataclasses.fields(Scenario) if f.metadata.get("section")}
    elsewhere = {"schedule", "output"}  # the schedule is in scenarios.md; output is not a model parameter
    assert sections - elsewhere == set(MECHANISM_SECTIONS)


def test_cohorts_md_reference_is_up_to_date():
    from blinasim.cohort.reference import BEGIN, END, render_cohort_reference
    text = (ROOT / "docs" / "cohorts.md").read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    assert text[start:end] + "\n" == render_cohort_reference(), (
        "docs/cohorts.md is stale: replace its generated part with "
        "blinasim.cohort.reference.render_cohort_reference()")


def test_every_command_is_documented():
    import argparse

    from blinasim.cli import build_parser
    text = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    undocumented = [name for name in commands if f"blinasim {name}" not in text]
    assert not undocumented, f"commands missing from README.md and docs/: {undocumented}"
    assert "blinasim --version" in text
