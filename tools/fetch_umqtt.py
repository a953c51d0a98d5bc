"""Install micropython-lib's umqtt.simple into lib/, pinned and hash-checked.

PyPI carries umqtt.simple only as an sdist with no setup.py, which pip refuses
to install, so we locate the archive through pip's own configured index (we
never hard-code a registry), verify its sha256 against the pin below, and unpack
`umqtt/simple.py` ourselves. When micropython.org's `mip` index answers, a user
may prefer `mip`; this script is the path that works without it.
"""
import hashlib
import html.parser
import io
import os
import subprocess
import sys
import tarfile
import urllib.parse
import urllib.request

PACKAGE = "micropython-umqtt.simple"
VERSION = "1.3.4"
SHA256 = "b6a2520239e3992c63a7de9370ee9b3d9d27819a90359c521f1c0f7ccab8d12f"
MEMBER = "umqtt/simple.py"
FILE_SHA256 = "8555d2f654deb8eb0d724f79b0811a78cc94029d070f3d96bbd74288653d63a5"  # simple.py itself


def try_mip(dest_root):
    """micropython-lib's own installer, when its index answers (not on every
    network). The installed file must be byte-identical to the pinned one."""
    micropython = os.environ.get("MICROPYTHON") or os.path.join(os.path.dirname(sys.executable), "micropython")
    if not os.path.exists(micropython):
        return False
    try:
        proc = subprocess.run([micropython, "-m", "mip", "install", "--target", dest_root,
                               "umqtt.simple@" + VERSION], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return False
    path = os.path.join(dest_root, MEMBER)
    if proc.returncode or not os.path.exists(path):
        return False
    with open(path, "rb") as f:
        if hashlib.sha256(f.read()).hexdigest() == FILE_SHA256:
            print("installed umqtt.simple %s with mip (sha256 ok)" % VERSION)
            return True
    os.remove(path)
    print("mip gave a umqtt/simple.py that does not match the pin; ignoring it")
    return False


def pip_index_urls(python):
    """Ask pip which index it uses: its config first, else its built-in default."""
    urls = []
    out = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.endswith("index-url"):
            urls.extend(v for v in value.strip().strip("'\"").split() if v.startswith("http"))
    env = os.environ.get("PIP_INDEX_URL")
    if env:
        urls.insert(0, env)
    if True:  # pip's built-in default index comes last
        default = subprocess.run(
            [python, "-c", "from pip._internal.models.index import PyPI; print(PyPI.simple_url)"],
            capture_output=True, text=True).stdout.strip()
        urls.append(default)
    return urls


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.extend(v for k, v in attrs if k == "href")


def find_archive(index):
    project = PACKAGE.replace(".", "-")
    page_url = index.rstrip("/") + "/" + project + "/"
    with urllib.request.urlopen(page_url, timeout=60) as resp:
        parser = _Links()
        parser.feed(resp.read().decode())
    wanted = "%s-%s.tar.gz" % (PACKAGE, VERSION)
    for href in parser.hrefs:
        if urllib.parse.urlparse(href).path.endswith(wanted):
            return urllib.parse.urljoin(page_url, href.split("#")[0])
    raise LookupError("%s not listed at %s" % (wanted, page_url))


def main():
    dest_root = sys.argv[1] if len(sys.argv) > 1 else "lib"
    dest = os.path.join(dest_root, MEMBER)
    if os.path.exists(dest):
        print("umqtt.simple already installed at", dest)
        return 0
    if try_mip(dest_root):
        return 0
    errors = []
    for index in pip_index_urls(sys.executable):
        try:
            url = find_archive(index)
            with urllib.request.urlopen(url, timeout=120) as resp:
                blob = resp.read()
        except Exception as exc:  # try the next configured index
            errors.append("%s: %s" % (index, exc))
            continue
        digest = hashlib.sha256(blob).hexdigest()
        if digest != SHA256:
            print("ERROR: %s %s has sha256 %s, expected %s; refusing to install"
                  % (PACKAGE, VERSION, digest, SHA256), file=sys.stderr)
            return 2
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("/" + MEMBER))
            data = tar.extractfile(member).read()
        if hashlib.sha256(data).hexdigest() != FILE_SHA256:
            print("ERROR: umqtt/simple.py in the archive does not match its pin", file=sys.stderr)
            return 2
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(os.path.join(dest_root, "umqtt", "__init__.py"), "w"):
            pass
        with open(dest, "wb") as f:
            f.write(data)
        print("installed %s %s (sha256 ok) into %s" % (PACKAGE, VERSION, dest))
        return 0
    print("ERROR: could not fetch %s %s from pip's index:\n  %s\n"
          "Check network access to your package index, or copy umqtt/simple.py into lib/ by hand."
          % (PACKAGE, VERSION, "\n  ".join(errors)), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
