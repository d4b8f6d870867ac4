"""Option parsing, config round-trip and the exit-code contract."""

import dataclasses
import subprocess
import sys

import pytest
import yaml

from rs_ssl import cli
from rs_ssl import config as C
from rs_ssl.config import AugsearchConfig, PretrainConfig
from rs_ssl.errors import UsageError
from rs_ssl.runs import write_config


def test_defaults_and_overrides():
    cmd, cfg = cli.parse(["pretrain", "--bands", "12", "--batch-size", "8", "--skip-bad"])
    assert cmd == "pretrain" and isinstance(cfg, PretrainConfig)
    assert cfg.bands == "12" and cfg.batch_size == 8 and cfg.skip_bad is True
    assert cfg.method == "simclr" and cfg.size == PretrainConfig().size


def test_config_file_then_cli_precedence(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("batch-size: 16\nlr: 0.5\nmethod: simclr\n")
    _, cfg = cli.parse(["pretrain", "--config", str(f), "--lr", "0.1"])
    assert cfg.batch_size == 16 and cfg.method == "simclr" and cfg.lr == 0.1


def test_config_round_trip(tmp_path):
    _, cfg = cli.parse(
        [
            "pretrain",
            "--bands",
            "B02,B03",
            "--size",
            "32",
            "--region",
            "california",
            "--resume",
            "--out",
            str(tmp_path),
        ]
    )
    path = write_config(tmp_path, "pretrain", cfg, extra={"note": 1})
    assert yaml.safe_load(path.read_text())["command"] == "pretrain"
    _, again = cli.parse(["pretrain", "--config", str(path)])
    assert again == cfg


def test_bad_config_key(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("batchsize: 16\n")
    assert cli.main(["pretrain", "--config", str(f)]) == 2


def test_bad_config_value(tmp_path, capsys):
    f = tmp_path / "c.yaml"
    f.write_text("size: big\n")
    assert cli.main(["pretrain", "--config", str(f)]) == 2
    assert "size: expected int" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["pretrain", "--size", "abc"],
        ["pretrain", "--method", "byol"],
        ["nosuch"],
        ["pretrain", "--bogus"],
    ],
)
def test_bad_usage_exits_2_with_one_line(argv):
    p = subprocess.run([sys.executable, "-m", "rs_ssl", *argv], capture_output=True, text=True)
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_unknown_band_name_exits_2_and_lists_valid(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "rs_ssl", "pretrain", "--bands", "B02,B13", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2
    assert "B13" in p.stderr and "B8A" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_every_command_has_help_with_defaults_listing_only_the_options_it_uses():
    shared = set(C.shared_option_names())
    for name, command in cli.COMMANDS.items():
        p = subprocess.run(
            [sys.executable, "-m", "rs_ssl", name, "--help"], capture_output=True, text=True
        )
        assert p.returncode == 0, (name, p.stderr)
        text = " ".join(p.stdout.split())
        own = {f.name for f in dataclasses.fields(command.config)} - {"runs"}
        assert "--config" in text, name
        for opt in own:
            assert f"--{opt.replace('_', '-')} " in text, (name, opt)
        for opt in shared - own:  # a shared option the command does not use is not offered
            assert f"--{opt.replace('_', '-')} " not in text, (name, opt)
        assert text.count("(default:") >= len(own), name
    for name in ("pretrain", "probe", "embed", "augsearch"):
        assert shared <= {f.name for f in dataclasses.fields(cli.COMMANDS[name].config)} | {
            "zoom"
        }, name
    report = {f.name for f in dataclasses.fields(cli.COMMANDS["report"].config)}
    assert report == {"out", "runs"}  # was given nine input/run options it ignored
    top = subprocess.run(
        [sys.executable, "-m", "rs_ssl", "--help"], capture_output=True, text=True
    ).stdout
    for name in cli.COMMANDS:
        assert name in top


def test_option_ranges_are_declared_once_and_checked_on_every_path(tmp_path, capsys):
    with pytest.raises(UsageError, match="--size 0: must be > 0"):
        cli.parse(["pretrain", "--size", "0"])
    f = tmp_path / "c.yaml"
    f.write_text("fraction: 1.5\n")
    assert cli.main(["augsearch", "--config", str(f)]) == 2
    assert "--fraction 1.5: must be in (0, 1]" in capsys.readouterr().err
    with pytest.raises(UsageError, match="--drop-bottom 1.0: must be in \\[0, 1\\)"):
        AugsearchConfig(drop_bottom=1.0)  # built in code, as augsearch builds its runs' configs
    with pytest.raises(UsageError, match="--level 4: choose one of 1, 2, 3"):
        cli.parse(["probe", "--config", str(_yaml(tmp_path, "level: 4"))])
    assert cli.main(["bench", "--rounds", "0"]) == 2
    assert "--knn -1: must be >= 0" in _usage_error(["probe", "--knn=-1"])


def _yaml(tmp_path, text):
    f = tmp_path / "opts.yaml"
    f.write_text(text + "\n")
    return f


def _usage_error(argv) -> str:
    with pytest.raises(UsageError) as e:
        cli.parse(argv)
    return str(e.value)


def test_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert cli.main(["pretrain", "--out", str(f / "run"), "--max-steps", "1"]) == 1
    assert "cannot write" in capsys.readouterr().err


def test_negative_bbox_values_are_accepted():
    _, cfg = cli.parse(["pretrain", "--region", "-122.5,35.1,-119,40", "--seed", "-1"])
    assert cfg.region == "-122.5,35.1,-119,40" and cfg.seed == -1


def test_positionals_may_sit_between_options():
    _, cfg = cli.parse(["convert", "in_dir", "--to", "zarr", "out.zarr"])
    assert cfg.data == "in_dir" and cfg.out == "out.zarr" and cfg.to == "zarr"
    _, cfg = cli.parse(["manifest", "--stats", "some/path"])
    assert cfg.data == "some/path" and cfg.stats
