"""The `rs-ssl` command line: parses options into typed configs and calls library functions.

Options are generated from the dataclasses in `rs_ssl.config`, so the CLI, `--config FILE.yaml`
and the `config.yaml` written into every run folder always share one set of names.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import os
import re
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from rs_ssl import __version__
from rs_ssl import config as C
from rs_ssl.errors import RsSslError, UsageError


@dataclasses.dataclass(frozen=True)
class Command:
    config: type
    handler: str  # "module:function", imported only when the command runs (fast --help)
    summary: str
    positionals: tuple[tuple[str, str, str], ...] = ()  # (field, metavar, nargs)


COMMANDS: dict[str, Command] = {
    "pretrain": Command(
        C.PretrainConfig,
        "rs_ssl.pretrain:run",
        "self-supervised pretraining of a timm backbone on any band count",
    ),
    "probe": Command(
        C.ProbeConfig, "rs_ssl.eval.probing:probe", "linear probe (and k-NN) on frozen features"
    ),
    "finetune": Command(
        C.FinetuneConfig,
        "rs_ssl.eval.finetuning:finetune",
        "fine-tune with a fraction of the labels, against random initialisation",
    ),
    "embed": Command(
        C.EmbedConfig,
        "rs_ssl.embed:run",
        "frozen features per patch to GeoParquet, GeoPackage and a GeoTIFF for QGIS",
    ),
    "similar": Command(
        C.SimilarConfig,
        "rs_ssl.embed:similar",
        "nearest patches to a query patch by cosine similarity, as a GeoParquet/GeoPackage layer",
    ),
    "manifest": Command(
        C.ManifestConfig,
        "rs_ssl.data.manifest:run",
        "scan a dataset once: formats, bands, CRSs, labels, broken files",
        (("data", "PATH", "?"),),
    ),
    "convert": Command(
        C.ConvertConfig,
        "rs_ssl.data.convert:run",
        "convert a supported input to a chunked zarr store",
        (("data", "PATH", "?"), ("out", "OUT", "?")),
    ),
    "augsearch": Command(
        C.AugsearchConfig,
        "rs_ssl.eval.augment_search:augsearch",
        "short pretrain + probe for every pair of augmentations: F1 heatmap and ranking",
    ),
    "report": Command(
        C.ReportConfig,
        "rs_ssl.eval.reporting:report",
        "collect runs into report.md / report.html with figures",
        (("runs", "RUN_DIR", "*"),),
    ),
    "bench": Command(
        C.BenchConfig,
        "rs_ssl.bench:run",
        "images/s of the full training step (optionally against TorchGeo)",
    ),
    "recipes": Command(
        C.RecipesConfig,
        "rs_ssl.recipes:list_recipes",
        "list the shipped study recipes (use with --recipe NAME), or print one",
        (("name", "NAME", "?"),),
    ),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One clear line and exit code 2 (argparse would print the whole usage block first).
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _fmt_default(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, list):
        return "[]"
    return str(v)


def _add_options(parser: argparse.ArgumentParser, cls: type, positional: set[str]) -> None:
    types_ = C.field_types(cls)
    shared = C.shared_option_names()
    groups = {
        True: parser.add_argument_group("shared options"),
        False: parser.add_argument_group(f"{parser.prog.split()[-1]} options"),
    }
    # Shared options first, in one order for every command; then the command's own, as declared.
    fields = sorted(
        dataclasses.fields(cls),
        key=lambda f: shared.index(f.name) if f.name in shared else len(shared),
    )
    for f in fields:
        if f.name in positional:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        md = f.metadata
        flag = "--" + f.name.replace("_", "-")
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        help_ = md.get("help", "")
        if md.get("range") is not None:
            help_ += f"; {md['range']}"
        if "(default:" not in help_:
            help_ += f" (default: {_fmt_default(default)})"
        tp = types_[f.name]
        if tp is bool:
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = tp if tp in (int, float, str) else str
            kw["metavar"] = f.name.upper()
            if md.get("choices"):
                kw["choices"] = md["choices"]
                kw["metavar"] = "{" + ",".join(map(str, md["choices"])) + "}"
        groups[f.name in shared].add_argument(flag, help=help_, **kw)
    parser.add_argument(
        "--config",
        metavar="FILE.yaml",
        default=argparse.SUPPRESS,
        help="read options from a YAML file whose keys mirror the options; command-line options override it",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rs-ssl",
        description="Self-supervised pretraining for remote-sensing imagery with first-class multispectral support.",
        epilog="Run `rs-ssl COMMAND --help` for a command's options. Exit codes: 0 success, 2 bad usage, 1 other failure.",
    )
    parser.add_argument("--version", action="version", version=f"rs-ssl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    parser.command_parsers = {}
    for name, cmd in COMMANDS.items():
        p = parser.command_parsers[name] = sub.add_parser(
            name,
            help=cmd.summary,
            description=inspect.cleandoc(cmd.config.__doc__ or cmd.summary),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        for field, metavar, nargs in cmd.positionals:
            p.add_argument(
                field,
                metavar=metavar,
                nargs=nargs,
                default=argparse.SUPPRESS,
                help=f"same as --{field}" if field != "runs" else "run folders",
            )
        _add_options(p, cmd.config, {f for f, _, _ in cmd.positionals if f == "runs"})
    return parser


_NUMBER_LIST = re.compile(r"^-\d+(\.\d*)?(,-?\d+(\.\d*)?)*$")


def _join_negative_values(argv: Sequence[str]) -> list[str]:
    """`--region -122.5,35,-119,40` -> `--region=-122.5,35,-119,40`: argparse would take the value for an option."""
    out: list[str] = []
    for tok in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and _NUMBER_LIST.match(tok):
            out[-1] = f"{out[-1]}={tok}"
        else:
            out.append(tok)
    return out


def parse(argv: Sequence[str]) -> tuple[str, Any]:
    """Parse argv into (command, resolved config); raises UsageError or exits 2 on bad usage."""
    parser = build_parser()
    argv = _join_negative_values(argv)
    if not argv:
        parser.print_help(sys.stderr)
        raise SystemExit(2)
    if argv[0] not in COMMANDS:  # --help, --version, or an unknown command: argparse says it
        parser.parse_args(argv)
        raise SystemExit(2)
    # Per command, positionals may sit between options (`convert PATH --to zarr OUT`); argparse
    # supports that only without subparsers, hence the command's own parser.
    ns = parser.command_parsers[argv[0]].parse_intermixed_args(argv[1:])
    ns.command = argv[0]
    cmd = COMMANDS[ns.command]
    given = {k: v for k, v in vars(ns).items() if k not in ("command", "config")}
    file_values = C.load_config_file(cmd.config, ns.config) if "config" in ns else {}
    # A recipe sits between the defaults and --config; named on the command line or in the --config
    # file (a run's config.yaml names its recipe, so replaying it resolves the same values).
    recipe = given.get("recipe", file_values.get("recipe"))
    if recipe:
        from rs_ssl.recipes import recipe_values

        file_values = {**recipe_values(ns.command, cmd.config, recipe), **file_values}
    return ns.command, C.build_config(cmd.config, file_values, given)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        command, cfg = parse(argv)
        module, func = COMMANDS[command].handler.split(":")
        handler = getattr(importlib.import_module(module), func)
        handler(cfg)
        return 0
    except UsageError as e:
        print(f"rs-ssl: error: {e}", file=sys.stderr)
        return e.exit_code
    except RsSslError as e:
        print(f"rs-ssl: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("rs-ssl: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the last line of defence: exit 1 with the reason
        if os.environ.get("RS_SSL_DEBUG"):
            traceback.print_exc()
        print(
            f"rs-ssl: error: {type(e).__name__}: {e} (set RS_SSL_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


def run_for_metrics(argv: Sequence[str], out) -> dict[str, Any]:
    """Run a command in this process (as the benchmark scripts do): exit with its code if it fails,
    else return the metrics.json it wrote into `out`."""
    from rs_ssl.runs import read_metrics

    rc = main(argv)
    if rc:
        raise SystemExit(rc)
    return read_metrics(out)


if __name__ == "__main__":
    raise SystemExit(main())
