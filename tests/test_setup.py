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
