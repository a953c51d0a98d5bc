"""Every block a reader would copy out of README.md and docs/*.md runs here,
so that the docs cannot drift from the code again.

Each fenced block says what it is by its language:
- `sh` (or bash, shell, console) and `python`: a command or script. It is run
  for real, in a copy of the repository (it may change the tree), in the way
  the HTML comment right before it says (mode `run` when there is none):

      <!-- doc-test: MODE [option=value ...] -->

  run                 run to the end; it must exit 0
  serve expect=RE     a long-running command: started, its output must show
                      RE before it exits, then it is stopped (SIGINT, SIGKILL)
  tty expect=RE keys=K  needs a terminal: run in a private tmux server,
                      the screen must show RE, then the keys K are typed and
                      it must exit 0
  device [expect-files="a b"]  for a board on /dev/ttyUSB0: the port is a pty
                      (socat) to a unix-port MicroPython standing for the board
                      (tests/fakes/serial_board.py), whose folder must then
                      hold the files named
  dry reason=...      too long or recursive to run here (`make test` is this
                      suite): run with `make` as `make -n`, which must succeed
  skip reason=...     cannot run here at all; listed as skipped with its reason
  repl expect=RE      (python blocks) lines a technician types at the meter's
                      serial REPL (docs/tech-console.md): each line is typed, in
                      order, at one sim meter per page (provisioned with the
                      technician PIN 2468, REPL_PIN below), whose answers must
                      show RE; a line that raises fails the block

  Options: with=broker starts a mosquitto and the block's 1883 becomes its
  port; with=provisioning.json writes that file (meter id, key, broker),
  with=provisioning/<id>.json that meter's file for `make deploy`;
  with=demo starts `make run`'s demo in a private tmux and waits for its
  build/demo.json (for blocks that drive the demo meter from a second
  terminal), then quits it after the block; expect=RE must then be in the
  block's output;
  timeout=S. Always: /tmp/ becomes a private folder, 47001 a free port, and
  1883 a free port when no broker is asked for, so blocks touch nothing
  outside the test.
- `json`: a payload example: it must parse; `<!-- doc-test: tariff -->`
  before it also has the firmware's Tariff (in MicroPython) accept it.
- `text`: not a command (layouts, signatures, file contents): not run.
- `conf`: a configuration file's contents (mosquitto.conf): not run here;
  the test of the feature it configures loads it (tests/test_link_poison.py).

A block without a language, a command in an indented (unfenced) block, and
an unknown mode fail, so that a new block is never silently left unrun.
Failures name the file and line of the block.
"""
import glob
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import pytest

from wait import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC_FILES = ["README.md"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
SHELL_LANGS = {"sh", "bash", "shell", "console"}
TEXT_LANGS = {"text", "conf"}
MODES = {"run", "serve", "tty", "device", "dry", "skip", "repl"}
FENCE = re.compile(r"^ {0,3}(```+|~~~+)\s*([A-Za-z0-9_+-]*)\s*$")
DIRECTIVE = re.compile(r"^<!--\s*doc-test:\s*(.*?)\s*-->\s*$")
# the first word of a line in an indented block that makes it a command
COMMANDISH = re.compile(r"^    (\$ |\.venv/|make |python3? |mosquitto |cd |export |mkdir |socat |mpremote )")
DEMO_KEY_HEX = bytes(range(32)).hex()


@dataclass
class Block:
    path: str
    line: int        # 1-based line of the opening fence
    lang: str
    text: str
    mode: str = ""
    opts: dict = field(default_factory=dict)
    directive_line: int = 0

    @property
    def where(self):
        return "%s:%d" % (self.path, self.line)

    def describe(self):
        return "%s (```%s, mode %s)" % (self.where, self.lang, self.mode or "-")


def parse_directive(text):
    words = shlex.split(text)
    mode = words[0] if words else ""
    opts = {}
    for w in words[1:]:
        k, _, v = w.partition("=")
        opts[k] = v
    return mode, opts


def parse_doc(path):
    """The fenced blocks of one markdown file, and the problems found."""
    lines = open(os.path.join(ROOT, path), encoding="utf-8").read().split("\n")
    blocks, problems = [], []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            if COMMANDISH.match(lines[i]):
                problems.append("%s:%d: a command in an indented block; fence it as ```sh so that "
                                "it is run: %r" % (path, i + 1, lines[i].strip()))
            i += 1
            continue
        fence, lang = m.group(1), m.group(2).lower()
        j = i + 1
        while j < len(lines) and not lines[j].lstrip().startswith(fence):
            j += 1
        if j == len(lines):
            problems.append("%s:%d: fence not closed" % (path, i + 1))
            break
        b = Block(path, i + 1, lang, "\n".join(lines[i + 1:j]) + "\n")
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        if k >= 0:
            d = DIRECTIVE.match(lines[k].strip())
            if d:
                b.mode, b.opts = parse_directive(d.group(1))
                b.directive_line = k + 1
        blocks.append(b)
        i = j + 1
    for b in blocks:
        problems.extend(block_problems(b))
    return blocks, problems


def block_problems(b):
    if not b.lang:
        return ["%s: a fenced block without a language: say `sh` or `python` (a command, run by "
                "this test), `json` (a payload, parsed) or `text` (not a command)" % b.where]
    if b.lang in SHELL_LANGS or b.lang == "python":
        if not b.mode:
            b.mode = "run"
        if b.mode not in MODES:
            return ["%s: unknown doc-test mode %r (one of %s)" % (b.where, b.mode, ", ".join(sorted(MODES)))]
        if b.mode in ("skip", "dry") and not b.opts.get("reason"):
            return ["%s: doc-test %s needs reason=\"why it cannot run here\"" % (b.where, b.mode)]
        if b.mode in ("serve", "tty", "repl") and not b.opts.get("expect"):
            return ["%s: doc-test %s needs expect=REGEX (what shows it started)" % (b.where, b.mode)]
        return []
    if b.lang == "json":
        if b.mode not in ("", "tariff"):
            return ["%s: json blocks take no doc-test mode but `tariff`, not %r" % (b.where, b.mode)]
        return []
    if b.lang in TEXT_LANGS:
        return [] if not b.mode else ["%s: a text block is not run; drop its doc-test comment" % b.where]
    return ["%s: unknown block language %r: use sh, python, json, text or conf" % (b.where, b.lang)]


ALL = []
PROBLEMS = []
for _p in DOC_FILES:
    _b, _pr = parse_doc(_p)
    ALL.extend(_b)
    PROBLEMS.extend(_pr)
COMMANDS = [b for b in ALL if (b.lang in SHELL_LANGS or b.lang == "python") and b.mode in MODES
            and b.mode != "repl"]
REPL_PAGES = sorted({b.path for b in ALL if b.lang == "python" and b.mode == "repl"})
REPL_PIN = "2468"


def test_every_block_in_the_docs_says_what_it_is_and_commands_are_fenced():
    assert ALL, "no fenced blocks found: is DOC_FILES right?"
    assert not PROBLEMS, "\n".join(PROBLEMS)


def test_json_examples_parse_and_tariff_examples_are_accepted_by_the_firmware():
    tariffs = []
    for b in ALL:
        if b.lang != "json":
            continue
        try:
            obj = json.loads(b.text)
        except ValueError as e:
            pytest.fail("%s: the json example does not parse: %s\n%s" % (b.where, e, b.text))
        if b.mode == "tariff":
            tariffs.append((b, obj))
    assert tariffs, "no tariff examples found"
    code = ("import json\nfrom firmware.credit.tariff import Tariff\n"
            "for where, t in json.loads(%r):\n"
            "    try:\n        Tariff(t)\n        print('ok', where)\n"
            "    except Exception as e:\n        print('refused', where, repr(e))\n"
            % json.dumps([(b.where, o) for b, o in tariffs]))
    out = subprocess.run([micropython(), "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30,
                         env=dict(os.environ, MICROPYPATH=ROOT + ":.frozen"))
    for b, _ in tariffs:
        assert "ok " + b.where in out.stdout, "%s: the firmware refused the tariff example:\n%s%s" % (
            b.where, out.stdout, out.stderr)


# --- the protocol's worked examples (indented lines of docs/protocol.md)
def test_protocol_worked_examples_are_canonical_and_their_macs_verify():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    from headend import codec
    text = open(os.path.join(ROOT, "docs", "protocol.md"), encoding="utf-8").read()
    key = bytes.fromhex(re.search(r"Key \(hex\) `([0-9a-f]{64})`", text).group(1))
    examples = []
    for n, line in enumerate(text.split("\n"), 1):
        m = re.match(r"^    (?:(ack): )?(\{.*\})\s*$", line)
        if m:
            examples.append((n, m.group(1), m.group(2)))
    assert len(examples) >= 8, "the worked examples were not found in docs/protocol.md"
    signed_bytes = None
    for n, label, raw in examples:
        where = "docs/protocol.md:%d" % n
        obj = json.loads(raw)
        if "mac" not in obj:
            # the canonical bytes that are signed: exactly the canonical form
            assert codec.canonical(obj).decode() == raw, where + ": not in canonical form"
            signed_bytes = raw
            continue
        assert codec.mac_hex(key, codec.canonical(obj)) == obj["mac"], where + ": the mac does not verify"
        if "exp" in obj and label is None:
            # a command must travel as the canonical form of the whole object, mac included
            assert json.dumps(obj, sort_keys=True, separators=(",", ":")) == raw, \
                where + ": a command is sent exactly canonical, mac in its sorted place"
    assert signed_bytes, "the canonical bytes of the top-up example were not found"
    # the one-liner the page gives to check an implementation
    one = re.search(r"`(python3 -c '.*?')`", text).group(1)
    cmd = one.replace("<canonical bytes>", signed_bytes.replace('"', '\\"'))
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=30)
    topup = json.loads(next(raw for _, _, raw in examples if '"order":42' in raw and '"mac"' in raw))
    assert out.stdout.strip() == topup["mac"], "docs/protocol.md: the check one-liner gives %r, not the " \
        "example's mac: %s" % (out.stdout + out.stderr, cmd)


# --- running the commands
def micropython():
    return os.environ.get("MICROPYTHON") or os.path.join(ROOT, ".venv", "bin", "micropython")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A copy of the repository (build/ and lib/umqtt/ included, mtimes kept
    so make sees setup done), with the venv linked in."""
    base = tmp_path_factory.mktemp("docs")
    repo = str(base / "repo")
    shutil.copytree(ROOT, repo, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", ".pytest_cache", "*.sqlite"))
    os.symlink(os.path.realpath(os.path.join(ROOT, ".venv")), os.path.join(repo, ".venv"))
    return repo


class Run:
    """One block's world: a private /tmp, ports, helpers it asked for."""

    def __init__(self, block, repo, tmp):
        self.b, self.repo, self.tmp = block, repo, str(tmp)
        self.ports = {"47001": str(free_port()), "1883": str(free_port())}
        self.cleanup = []
        self.late = {}   # replaced after the /tmp/ and port rewrites
        self.timeout = float(block.opts.get("timeout", 90))

    def text(self):
        t = self.b.text.replace("/tmp/", self.tmp + "/")
        for old, new in self.ports.items():
            t = re.sub(r"\b%s\b" % old, new, t)
        for old, new in self.late.items():
            t = t.replace(old, new)
        return t

    def start_helpers(self):
        wanted = self.b.opts.get("with", "").split(",")
        if "broker" in wanted:
            sys.path.insert(0, os.path.join(ROOT, "tools"))
            from broker import Broker
            br = Broker(os.path.join(self.tmp, "broker")).start()
            self.cleanup.append(br.stop)
            self.ports["1883"] = str(br.port)
        if "demo" in wanted:
            self.start_demo()
        for name in wanted:
            # a provisioning file: provisioning.json, or provisioning/<meter id>.json
            if name.endswith(".json"):
                meter = os.path.basename(name)[:-5] if name.startswith("provisioning/") else "MTR-0001"
                path = os.path.join(self.repo, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as f:
                    json.dump({"meter_id": meter, "key_hex": DEMO_KEY_HEX, "broker_host": "127.0.0.1",
                               "broker_port": int(self.ports["1883"])}, f)

    def start_demo(self):
        demo_file = os.path.join(self.repo, "build", "demo.json")
        if os.path.exists(demo_file):
            os.unlink(demo_file)
        tmux = ["tmux", "-L", "doc-demo-%d" % os.getpid()]
        cmd = "cd %s && %s tools/run_demo.py; sleep 30" % (shlex.quote(self.repo),
                                                         shlex.quote(os.path.join(self.repo, ".venv", "bin", "python")))
        subprocess.run(tmux + ["new-session", "-d", "-s", "demo", "-x", "100", "-y", "32", cmd], check=True,
                       env=dict(self.env(), TERM="xterm-256color"))

        def stop():
            subprocess.run(tmux + ["send-keys", "-t", "demo", "-l", "q"], capture_output=True)
            try:   # the demo removes its file as it quits
                wait_for(lambda: not os.path.exists(demo_file), 15, "the demo to quit")
            except AssertionError:
                pass   # the server is killed all the same
            subprocess.run(tmux + ["kill-server"], capture_output=True)
        self.cleanup.append(stop)
        try:
            wait_for(lambda: os.path.exists(demo_file), 60, "build/demo.json")
        except AssertionError:
            screen = subprocess.run(tmux + ["capture-pane", "-p", "-t", "demo"], capture_output=True,
                                    text=True).stdout
            self.fail("make run's demo wrote no build/demo.json within 60 s", screen)

    def env(self):
        # temp files of the commands (make run's demo folder) stay in the block's folder
        return dict(os.environ, TMPDIR=self.tmp)

    def argv(self, text):
        if self.b.lang == "python":
            return [os.path.join(self.repo, ".venv", "bin", "python"), "-c", text]
        return ["bash", "-e", "-o", "pipefail", "-c", text]

    def fail(self, why, out):
        pytest.fail("%s: %s\n--- block (as run, in %s) ---\n%s--- output (end) ---\n%s"
                    % (self.b.describe(), why, self.repo, self.text(), out[-4000:]), pytrace=False)

    def close(self):
        for fn in reversed(self.cleanup):
            try:
                fn()
            except Exception:
                pass


def _stop_group(proc):
    """End the block's process group (it was started in a session of its
    own): SIGINT first, so its clean-up runs as at a Ctrl-C, then SIGKILL
    for whatever is left. Also once the block itself has exited: what it
    started in the background stays in its group (a shell's `&` job
    ignores SIGINT, hence the SIGKILL), and must not outlive the test."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.2)   # the group's other members' own SIGINT clean-up
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass   # the group is empty: nothing left
    proc.wait(5)


def run_to_end(r, env=None, cwd=None):
    proc = subprocess.Popen(r.argv(r.text()), cwd=cwd or r.repo, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True, env=env or r.env())
    try:
        out, _ = proc.communicate(timeout=r.timeout)
    except subprocess.TimeoutExpired:
        _stop_group(proc)
        out = proc.communicate()[0]
        r.fail("did not finish within %.0f s" % r.timeout, out)
    _stop_group(proc)  # anything it left running in its group
    if proc.returncode != 0:
        r.fail("exit status %d" % proc.returncode, out)
    return out


def do_run(r):
    out = run_to_end(r)
    print(out[-2000:])
    expect = r.b.opts.get("expect")
    if expect and not re.search(expect, out):
        r.fail("its output did not show %r" % expect, out)


def do_dry(r):
    # make as a dry run: the targets exist and their plans resolve
    import warnings
    warnings.warn("%s is only dry-run here: %s" % (r.b.where, r.b.opts["reason"]))
    text = "make() { command make -n \"$@\"; }\n" + r.text()
    proc = subprocess.run(["bash", "-e", "-c", text], cwd=r.repo, capture_output=True, text=True, timeout=60,
                          env=r.env())
    if proc.returncode != 0:
        r.fail("the dry run (make -n) failed, exit %d" % proc.returncode, proc.stdout + proc.stderr)


def do_serve(r):
    expect = re.compile(r.b.opts["expect"])
    proc = subprocess.Popen(r.argv(r.text()), cwd=r.repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, env=r.env())
    r.cleanup.append(lambda: _stop_group(proc))
    out = []
    reader = threading.Thread(target=lambda: [out.append(x.decode(errors="replace")) for x in proc.stdout],
                              daemon=True)
    reader.start()
    try:
        wait_for(lambda: expect.search("".join(out)) or proc.poll() is not None,
                 float(r.b.opts.get("timeout", 30)), "its output to show %r" % expect.pattern)
    except AssertionError:
        r.fail("its output did not show %r within the timeout" % expect.pattern, "".join(out))
    if not expect.search("".join(out)):
        reader.join(5)  # exited: the reader ends at the last line
        if not expect.search("".join(out)):
            r.fail("exited (status %s) before its output showed %r" % (proc.returncode, expect.pattern),
                   "".join(out))
    _stop_group(proc)
    print("".join(out)[-2000:])


def do_tty(r):
    expect = re.compile(r.b.opts["expect"])
    sock = "doc-test-%d" % os.getpid()
    tmux = ["tmux", "-L", sock]
    script = os.path.join(r.tmp, "block.sh")
    with open(script, "w") as f:
        f.write(r.text())
    done = os.path.join(r.tmp, "exit-status")
    cmd = "cd %s && bash -e %s; echo $? > %s; sleep 60" % (shlex.quote(r.repo), shlex.quote(script),
                                                        shlex.quote(done))
    subprocess.run(tmux + ["new-session", "-d", "-s", "doc", "-x", "120", "-y", "32", cmd], check=True,
                   env=dict(r.env(), TERM="xterm-256color"))
    r.cleanup.append(lambda: subprocess.run(tmux + ["kill-server"], capture_output=True))

    def screen():
        return subprocess.run(tmux + ["capture-pane", "-p", "-t", "doc"], capture_output=True,
                              text=True).stdout

    try:
        wait_for(lambda: expect.search(screen()) or os.path.exists(done),
                 float(r.b.opts.get("timeout", 60)), "the terminal to show %r" % expect.pattern)
    except AssertionError:
        pass
    if not expect.search(screen()):
        r.fail("the terminal did not show %r" % expect.pattern, screen())
    subprocess.run(tmux + ["send-keys", "-t", "doc", "-l", r.b.opts.get("keys", "q")], check=True)
    try:
        wait_for(lambda: os.path.exists(done) and open(done).read().strip(), 30, "the exit status")
    except AssertionError:
        r.fail("did not exit after the keys %r" % r.b.opts.get("keys", "q"), screen())
    status = open(done).read().strip()
    print(screen())
    if status != "0":
        r.fail("exit status %s" % status, screen())


def do_device(r):
    board_dir = os.path.join(r.tmp, "board")
    os.makedirs(board_dir)
    tty_link = os.path.join(r.tmp, "ttyUSB0")
    stand_in = "%s %s %s %s" % (sys.executable, os.path.join(ROOT, "tests", "fakes", "serial_board.py"),
                                board_dir, micropython())
    socat = subprocess.Popen(["socat", "PTY,link=%s,raw,echo=0" % tty_link, "EXEC:%s,pty,raw,echo=0" % stand_in],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    r.cleanup.append(lambda: _stop_group(socat))
    wait_for(lambda: os.path.exists(tty_link), 10, "socat's pty")
    r.late["/dev/ttyUSB0"] = tty_link
    out = run_to_end(r)
    missing = [p for p in r.b.opts.get("expect-files", "").split() if not os.path.exists(os.path.join(board_dir, p))]
    if missing:
        r.fail("the board's filesystem lacks %s" % ", ".join(missing), out)


RUNNERS = {"run": do_run, "serve": do_serve, "tty": do_tty, "device": do_device, "dry": do_dry}


@pytest.mark.parametrize("block", COMMANDS, ids=[b.where for b in COMMANDS])
def test_doc_command_runs_as_written(block, sandbox, tmp_path):
    if block.lang == "python":
        try:
            compile(block.text, block.where, "exec")
        except SyntaxError as e:
            pytest.fail("%s: the python block does not compile: %s" % (block.where, e), pytrace=False)
    if block.mode == "skip":
        pytest.skip("%s cannot run here: %s" % (block.where, block.opts["reason"]))
    if block.mode in ("tty",) and not shutil.which("tmux"):
        pytest.fail("%s needs tmux to be driven in a terminal" % block.where)
    if block.mode == "device" and not shutil.which("socat"):
        pytest.fail("%s needs socat for the board's serial port" % block.where)
    r = Run(block, sandbox, tmp_path)
    try:
        r.start_helpers()
        RUNNERS[block.mode](r)
    finally:
        r.close()


@pytest.mark.parametrize("page", REPL_PAGES)
def test_repl_examples_answer_as_the_page_says_at_a_running_meters_repl(page, tmp_path):
    from simmeter import ConsoleError, SimMeter, free_port
    import hashlib
    salt = bytes(range(16))
    h = salt + REPL_PIN.encode()
    for _ in range(1000):   # firmware/repl/auth.py pin_hash
        h = hashlib.sha256(salt + h).digest()
    m = SimMeter("MTR-0001", str(tmp_path / "meters"), broker_port=free_port(),
                 config={"initial_balance_minor": 5000, "tech_pin_salt": salt.hex(),
                         "tech_pin_hash": h.hex()})
    try:
        m.start()
        m.control({"cmd": "load", "w": 1500})
        for b in [b for b in ALL if b.path == page and b.mode == "repl"]:
            out = []
            for line in b.text.splitlines():
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                try:
                    out += m.console(line, timeout=30)
                except ConsoleError as e:
                    pytest.fail("%s: %r raised at the REPL:\n%s" % (b.where, line, e), pytrace=False)
            if not re.search(b.opts["expect"], "\n".join(out)):
                pytest.fail("%s: the REPL's answer does not show %r:\n%s" % (
                    b.where, b.opts["expect"], "\n".join(out)), pytrace=False)
    finally:
        m.stop()


def test_the_checker_names_the_line_of_a_block_it_cannot_classify(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# a page\n\n```\nmake frobnicate\n```\n\n<!-- doc-test: skip -->\n```sh\nmake x\n```\n\n"
                    "Then:\n\n    .venv/bin/python tools/x.py\n\n<!-- doc-test: serve -->\n```sh\nmake y\n```\n"
                    "```yaml\na: 1\n```\n<!-- doc-test: serve expect=up with=broker -->\n```sh\nmake z\n```\n")
    blocks, problems = parse_doc(str(page))
    where = str(page)
    assert [b.line for b in blocks] == [3, 8, 17, 20, 24]
    assert any(p.startswith(where + ":3: a fenced block without a language") for p in problems)
    assert any(p.startswith(where + ":8: doc-test skip needs reason=") for p in problems)
    assert any(p.startswith(where + ":14: a command in an indented block") for p in problems)
    assert any(p.startswith(where + ":17: doc-test serve needs expect=") for p in problems)
    assert any(p.startswith(where + ":20: unknown block language 'yaml'") for p in problems)
    assert len(problems) == 5, problems
    assert (blocks[4].mode, blocks[4].opts) == ("serve", {"expect": "up", "with": "broker"})
