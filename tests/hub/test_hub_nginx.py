"""The generated nginx configuration: what ASP.NET Core's scale-out page asks of a proxy, checked by nginx."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from simscale.hub.nginx import render_nginx_config


def test_the_config_has_what_signalr_needs_through_a_proxy(tmp_path: Path) -> None:
    conf = render_nginx_config(["127.0.0.1:5001", "127.0.0.1:5002"], listen_port=8080, workdir=str(tmp_path))
    for line in (
        "ip_hash;",
        "server 127.0.0.1:5001;",
        "server 127.0.0.1:5002;",
        "listen 127.0.0.1:8080;",
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_buffering off;",
        "proxy_cache off;",
        "proxy_read_timeout 100s;",
        f"pid {tmp_path}/nginx.pid;",
        f"error_log {tmp_path}/error.log warn;",
        "daemon off;",
    ):
        assert line in conf, line
    round_robin = render_nginx_config(["127.0.0.1:5001"], listen_port=8080, workdir="/w", sticky="none")
    assert "ip_hash" not in round_robin


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"upstreams": []}, "upstreams"),
        ({"listen_port": 0}, "listen_port"),
        ({"sticky": "cookie"}, "sticky"),
        ({"read_timeout_s": 0}, "read_timeout_s"),
    ],
)
def test_bad_values_name_the_field(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"upstreams": ["127.0.0.1:1"], "listen_port": 8080, "workdir": "/w", **kwargs}
    with pytest.raises(ValueError, match=field):
        render_nginx_config(**args)  # type: ignore[arg-type]


@pytest.mark.skipif(shutil.which("nginx", path="/usr/sbin:/usr/bin") is None, reason="needs nginx")
def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text(render_nginx_config(["127.0.0.1:5001"], listen_port=18080, workdir=str(tmp_path)))
    nginx = shutil.which("nginx", path="/usr/sbin:/usr/bin")
    assert nginx is not None
    checked = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(conf), "-e", f"{tmp_path}/error.log"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stderr
