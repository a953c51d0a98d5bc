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
