"""Offline plan wall time as a ratio to importing the provider SDKs, measured in the same run.

    python -m bench.plan [--quick] [--repeat N]

Two baselines:
- the issue's: a bare ``import pulumi_aws, pulumi_kubernetes, pulumi_eks`` (goal: plan <= 2.0x). Those
  packages load their service modules lazily, so this baseline leaves out most of the import work;
- the floor: importing exactly the SDK modules the program uses (found by running the plan once), which
  any Pulumi program declaring these resources pays. plan / floor is the overhead that is ours
  (config validation, mocks, capture, writing the files).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile

from bench._common import ROOT, print_table, python, summarise, time_command, write_result

GOAL = 2.0
SDK_PREFIXES = ("pulumi_aws.", "pulumi_kubernetes.", "pulumi_eks", "pulumi_random", "pulumi_docker_build")
DISCOVER = """
import sys, tempfile
sys.argv = ["stacks", "plan", "production", "--out", tempfile.mkdtemp()]
from stacks.cli import app
try:
    app()
except SystemExit:
    pass
names = sorted(m for m in sys.modules if m.startswith(%r) and not m.rsplit(".", 1)[-1].startswith("_"))
print(" ".join(names))
"""


def sdk_modules_the_program_imports() -> list[str]:
    result = subprocess.run(
        python("-c", DISCOVER % (SDK_PREFIXES,)),
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return result.stdout.strip().splitlines()[-1].split()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one sample each (for make test)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    repeat = 1 if args.quick else args.repeat

    modules = sdk_modules_the_program_imports()
    bare = summarise(time_command(python("-c", "import pulumi_aws, pulumi_kubernetes, pulumi_eks"), repeat))
    floor = summarise(time_command(python("-c", "import " + ", ".join(modules)), repeat))
    with tempfile.TemporaryDirectory() as out:
        plan = summarise(time_command(python("-m", "stacks", "plan", "production", "--out", out), repeat))
    ratio = plan["median_s"] / bare["median_s"]
    to_floor = plan["median_s"] / floor["median_s"]
    measures = [
        ("bare import pulumi_aws, pulumi_kubernetes, pulumi_eks", bare),
        (f"import the {len(modules)} SDK modules the program uses", floor),
        ("stacks plan production", plan),
    ]
    print_table(
        "offline plan of production vs SDK imports (wall seconds)",
        ["measure", "median s", "min s", "max s", "n"],
        [
            [n, f"{s['median_s']:.2f}", f"{s['min_s']:.2f}", f"{s['max_s']:.2f}", str(int(s["n"]))]
            for n, s in measures
        ],
    )
    print(
        f"ratio plan / bare import = {ratio:.2f} (goal <= {GOAL}: {'meets' if ratio <= GOAL else 'misses'})"
    )
    print(f"ratio plan / SDK modules the program uses = {to_floor:.2f}")
    result = {
        "bare_import": bare,
        "sdk_floor": floor,
        "sdk_modules": modules,
        "plan": plan,
        "ratio": ratio,
        "ratio_to_floor": to_floor,
        "goal": GOAL,
        "quick": args.quick,
    }
    print(f"wrote {write_result('plan', result)}")


if __name__ == "__main__":
    main()
