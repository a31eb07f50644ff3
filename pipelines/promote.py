"""`python -m pipelines.promote --model NAME --version V`: the human override of the gate.

Moves the `champion` alias to the given version and records who overrode what on the version.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from pipelines import registry
from pipelines.cli import add_mlflow_store_argument
from pipelines.errors import UserError, exits_cleanly_on_user_error


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.promote", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="registered model name, e.g. churn")
    parser.add_argument("--version", required=True, help="the version to make champion")
    parser.add_argument("--reason", default="manual promotion", help="why (kept as a tag on the version)")
    add_mlflow_store_argument(parser)
    args = parser.parse_args(argv)

    registry.connect(args.mlflow_store)
    if not registry.version_exists(args.model, args.version):
        where = registry.tracking_uri(args.mlflow_store)
        raise UserError(f"model '{args.model}' has no version {args.version} in {where}")
    previous = registry.champion_version(args.model)
    registry.set_alias(args.model, registry.CHAMPION, args.version)
    registry.tag_version(
        args.model,
        args.version,
        {
            "gate.decision": "champion (manual)",
            "gate.reason": f"{args.reason} by {getpass.getuser()}, replacing v{previous}",
        },
    )
    print(f"{args.model}: champion moved from v{previous} to v{args.version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
