"""Shared pieces of the benchmark scripts: installing tools, starting peers, running wrk."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ensure_packages(commands):
    """Installs the Debian package of every missing command ({command: package})."""
    missing = sorted({pkg for cmd, pkg in commands.items() if shutil.which(cmd) is None
                      and not os.path.exists(f"/usr/sbin/{cmd}")})
    if not missing:
        return
    print(f"installing {' '.join(missing)} ...", file=sys.stderr)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq"] + missing, check=True, env=env,
                   stdout=subprocess.DEVNULL)


def build_gateway(skip=False):
    """Builds the release binary the way the README's release build does; returns its path."""
    if not skip:
        subprocess.run([os.path.join(ROOT, "scripts", "build-release")], check=True)
    path = os.path.join(ROOT, ".build", "release", "gateway")
    if not os.path.exists(path):
        sys.exit("no release build at " + path)
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port} after {timeout}s")


def write(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


class Processes:
    """Child processes that are stopped (and waited for) whatever happens."""

    def __init__(self):
        self.procs = []

    def start(self, name, command, stdout=None):
        """`stdout`: a file to write the process's standard output to (default: discarded)."""
        out = open(stdout, "ab") if stdout else subprocess.DEVNULL
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE, start_new_session=True)
        if stdout:
            out.close()
        self.procs.append((name, proc))
        time.sleep(0.2)
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited at once: {proc.stderr.read().decode()[-2000:]}")
        return proc

    def stop_all(self):
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for name, proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def nginx_upstream(work, port, body):
    conf = f"""
worker_processes 1;
daemon off;
pid {work}/upstream.pid;
error_log {work}/upstream-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port};
    location / {{ default_type application/json; return 200 '{body}'; }}
  }}
}}
"""
    return ["nginx", "-c", write(work, "upstream.conf", conf), "-p", work]


def nginx_proxy(work, port, upstream_port, extra_http="", extra_location="", tls=None, http2=False):
    """`tls`: (certificate file, key file) to listen with TLS 1.2/1.3 instead of cleartext;
    `http2`: offer h2 by ALPN (`listen ... http2`, which every nginx since 1.9.5 reads)."""
    ssl = ""
    if tls:
        ssl = (f"ssl_certificate {tls[0]}; ssl_certificate_key {tls[1]}; ssl_protocols TLSv1.2 TLSv1.3; "
               "ssl_session_cache shared:tls:10m;")
    conf = f"""
worker_processes 1;
daemon off;
pid {work}/nginx-{port}.pid;
error_log {work}/nginx-{port}-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  upstream api {{ server 127.0.0.1:{upstream_port}; keepalive 128; }}
  {extra_http}
  server {{
    listen 127.0.0.1:{port}{" ssl" if tls else ""}{" http2" if http2 else ""};
    {ssl}
    location / {{
      proxy_pass http://api;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      {extra_location}
    }}
  }}
}}
"""
    return ["nginx", "-c", write(work, f"nginx-{port}.conf", conf), "-p", work]


def haproxy_proxy(work, port, upstream_port, extra_frontend="", tls_pem=None, alpn=None):
    """`tls_pem`: one file with the certificate and its key, to listen with TLS; `alpn`: the
    protocols it offers (e.g. "h2,http/1.1")."""
    conf = f"""
global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind 127.0.0.1:{port}{(" ssl crt " + tls_pem) if tls_pem else ""}{(" alpn " + alpn) if alpn else ""}
  {extra_frontend}
  default_backend be
backend be
  server s1 127.0.0.1:{upstream_port} maxconn 4000
"""
    return ["haproxy", "-db", "-f", write(work, f"haproxy-{port}.cfg", conf)]


def redis_server(work, port):
    """A throwaway redis-server command (no persistence) on loopback."""
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", work]


def redis_cluster(procs, work, masters=3):
    """A Redis Cluster of `masters` masters (no replicas) on loopback, started under `procs`;
    returns its seed URL for the gateway (`redis-cluster://...`)."""
    ports = [free_port() for _ in range(masters)]
    for port in ports:
        directory = os.path.join(work, f"cluster-{port}")
        os.makedirs(directory)
        procs.start(f"redis-cluster-{port}", redis_server(directory, port) + [
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", str(free_port())])
    for port in ports:
        wait_for_port(port)
    subprocess.run(["redis-cli", "--cluster", "create"] + [f"127.0.0.1:{port}" for port in ports] + ["--cluster-yes"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        states = [subprocess.run(["redis-cli", "-p", str(port), "CLUSTER", "INFO"], capture_output=True, text=True).stdout for port in ports]
        if all("cluster_state:ok" in state for state in states):
            return "redis-cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports)
        time.sleep(0.1)
    raise SystemExit("the Redis Cluster did not become healthy within 30 s")


def gateway_config(port, admin_port, upstream_port, extra="", access_log=False, tls=None):
    """`tls`: (certificate file, key file) for a TLS listener."""
    listen = f"127.0.0.1:{port}"
    if tls:
        listen = f"{{ address: 127.0.0.1:{port}, tls: {{ cert: {tls[0]}, key: {tls[1]} }} }}"
    return f"""
listen: {listen}
admin: 127.0.0.1:{admin_port}
access_log: {"true" if access_log else "false"}
pools:
  primary: {{ role: primary, servers: ["http://127.0.0.1:{upstream_port}"] }}
{extra}
"""


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_kib_tree(pid):
    """Resident KiB of `pid` and every process below it (nginx's workers)."""
    return sum(rss_kib(member) or 0 for member in process_tree(pid))


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid):
    """`pid` and every process below it (nginx's and Varnish's workers are children)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children.get(current, [])
    return tree


def cpu_seconds(pid):
    """(user, system) CPU seconds used so far by `pid` and its descendants, from /proc/PID/stat
    (utime and stime, all threads included)."""
    user = system = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
        user += int(fields[11])
        system += int(fields[12])
    return user / CLOCK_TICKS, system / CLOCK_TICKS


def _to_ms(text):
    value = float(re.match(r"[\d.]+", text).group())
    if text.endswith("us"):
        return value / 1000
    if text.endswith("ms"):
        return value
    if text.endswith("s"):
        return value * 1000
    return value


def run_wrk(url, duration, connections, rss_pid=None, script=None, headers=(), warmup=2, cpu_pid=None):
    """Warms up, then one measured wrk run; returns req/s, p50/p99 (ms), errors, requests, peak RSS
    and, with `cpu_pid`, the user and system CPU microseconds that process tree spent per request
    during the measured run."""
    base = ["wrk", "-t1", f"-c{connections}"]
    for header in headers:
        base += ["-H", header]
    if script:
        base += ["-s", script]
    if warmup:
        subprocess.run(base + [f"-d{warmup}s", url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cpu_before = cpu_seconds(cpu_pid) if cpu_pid else None
    proc = subprocess.Popen(base + [f"-d{duration}s", "--latency", url], stdout=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        if rss_pid:
            peak = max(peak, rss_kib(rss_pid) or 0)
        time.sleep(0.25)
    out = proc.stdout.read()
    cpu_after = cpu_seconds(cpu_pid) if cpu_pid else None
    # The distribution's lines only: "68.50%" in the thread stats must not match "50%".
    if not re.search(r"^\s+50%\s+[\d.]", out, re.M):
        raise SystemExit(f"wrk against {url} measured nothing:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _to_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = _to_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = 0
    match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if match:
        errors += int(match.group(1))
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if match:
        errors += sum(int(g) for g in match.groups())
    result = {"rps": rps, "p50": p50, "p99": p99, "errors": errors, "requests": requests, "peak_rss_kib": peak or None}
    if cpu_pid and requests:
        result["user_us"] = (cpu_after[0] - cpu_before[0]) * 1e6 / requests
        result["system_us"] = (cpu_after[1] - cpu_before[1]) * 1e6 / requests
    return result


def round_order(targets, round_number):
    """The order of round `round_number` (from 1): each round starts one target further on, and
    every other round runs backwards. A target's place and its neighbours bias it (machine load
    drifts within a round), and a fixed order would always favour the same one."""
    shift = (round_number - 1) % len(targets)
    order = targets[shift:] + targets[:shift]
    return order if round_number % 2 else order[::-1]


def print_table(title, results, baseline):
    base = results.get(baseline)
    print()
    print(title)
    print(f"{'target':<26}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}  {'x ' + baseline:>10}{'p99 x':>8}{'RSS idle/load MiB':>20}")
    for name, r in results.items():
        ratio = r["rps"] / base["rps"] if base else float("nan")
        p99_ratio = r["p99"] / base["p99"] if base else float("nan")
        rss = ""
        if r.get("idle_rss_kib") or r.get("peak_rss_kib"):
            idle = (r.get("idle_rss_kib") or 0) / 1024
            peak = (r.get("peak_rss_kib") or 0) / 1024
            rss = f"{idle:.1f} / {peak:.1f}"
        print(f"{name:<26}{r['rps']:>10.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}{r['errors']:>8}  {ratio:>10.2f}{p99_ratio:>8.2f}{rss:>20}")
    print()
