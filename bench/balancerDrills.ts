// Balancer drills on the lab: two nginx nodes behind a keepalived VIP. Clients on the lab host go
// through the VIP for the whole drill; the balancer holding the VIP is made to fail; we measure
// what a user would notice. Also: sessions of clients from several networks when a WorksPad node
// dies. Used by tests/e2e/lab.test.ts (one run each) and bench/balancer.ts (repeated runs).
import { execFile } from "child_process";
import * as https from "https";
import * as tls from "tls";
import { promisify } from "util";
import { byRole, layout } from "../lab/stack";
import { bootVm, crashVm, cutOff, heal, outageSeconds, ssh, until } from "./drills";

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const VIP = layout.vips.nginx;
const PORT = 443;
/** A path every WorksPad node answers (404) without its database: the drills measure the balancers, not the database. */
const PATH = "/hastack-drill";
/** The node answered (not nginx): the test double sets this cookie on every answer. */
const fromNode = (res: { headers: Record<string, unknown> }) =>
  ([] as string[]).concat((res.headers["set-cookie"] as string[] | undefined) ?? []).some((c) => c.startsWith("wpnode="));

/** Does `name` hold the nginx VIP right now? (false when it does not answer SSH) */
export async function holdsVip(name: string): Promise<boolean> {
  // 15 s: SSH alone took 4 s on this 2-core machine under the other jobs' load
  try { return (await ssh(name, `ip -o -4 addr show | grep -c ' ${VIP}/' || true`, 15000)) !== "0"; } catch { return false; }
}

export async function nginxVipHolders(): Promise<string[]> {
  const nodes = byRole("nginx");
  const held = await Promise.all(nodes.map((n) => holdsVip(n.name)));
  return nodes.filter((_, i) => held[i]).map((n) => n.name);
}

// ---- clients -----------------------------------------------------------------------------------

interface Probe { start: number; end: number; ok: boolean; err?: string; port?: number }

/** One GET through the VIP; `agent: false` = a new TCP and TLS connection for this request only. */
function get(agent: https.Agent | false, timeoutMs: number, t0: number): Promise<Probe> {
  const start = (Date.now() - t0) / 1000;
  return new Promise((resolve) => {
    let done = false;
    const finish = (p: Omit<Probe, "start" | "end">) => { if (!done) { done = true; resolve({ start, end: (Date.now() - t0) / 1000, ...p }); } };
    const req = https.get({ host: VIP, port: PORT, path: PATH, agent, rejectUnauthorized: false, timeout: timeoutMs }, (res) => {
      const port = res.socket?.localPort;
      res.resume();
      const ok = fromNode(res);
      res.on("end", () => finish({ ok, port, ...(ok ? {} : { err: `HTTP ${res.statusCode} from nginx` }) }));
      res.on("error", (e) => finish({ ok: false, err: e.message, port }));
    });
    req.on("timeout", () => { req.destroy(new Error(`timeout ${timeoutMs} ms`)); });
    req.on("error", (e) => finish({ ok: false, err: (e as NodeJS.ErrnoException).code ?? e.message }));
  });
}

/** New requests: one started every 100 ms, each on a new connection, none waiting for another; 3 s timeout each. */
function newRequestClient(t0: number) {
  const probes: Promise<Probe>[] = [];
  let stop = false;
  const loop = (async () => { while (!stop) { probes.push(get(false, 3000, t0)); await sleep(100); } })();
  return { stop: async () => { stop = true; await loop; return Promise.all(probes); } };
}

/**
 * A long connection as a websocket client keeps it: one kept-alive HTTPS connection, a request on it
 * every 200 ms (the client's "ping"), 5 s timeout; after an error the next request opens a new one.
 */
function longConnectionClient(t0: number) {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  const probes: Probe[] = [];
  let stop = false;
  const loop = (async () => { while (!stop) { probes.push(await get(agent, 5000, t0)); await sleep(200); } })();
  return { stop: async () => { stop = true; await loop; agent.destroy(); return probes; } };
}

/** An idle long connection (a websocket waiting for a push): one request, then silence; when does it learn? */
function idleConnection(t0: number) {
  let closedAt: number | undefined, reason = "";
  const s = tls.connect({ host: VIP, port: PORT, rejectUnauthorized: false, servername: "localhost" }, () => {
    s.write(`GET ${PATH} HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n`);
  });
  s.on("data", () => { /* the one answer; then nothing */ });
  s.on("error", (e) => { reason = (e as NodeJS.ErrnoException).code ?? e.message; });
  s.on("close", () => { closedAt = (Date.now() - t0) / 1000; reason = reason || "closed by the server (FIN)"; });
  return { stop: () => { const r = { closedAt, reason }; s.destroy(); return r; } };
}

const gap = (probes: Probe[], from: number, runEnd: number) =>
  outageSeconds({ run: "", attempts: probes.length, errors: [], acked: probes.filter((p) => p.ok).map((p, i) => [i, p.end] as [number, number]).sort((a, b) => a[1] - b[1]) }, from, runEnd);

// ---- balancer drills ---------------------------------------------------------------------------

export interface BalancerDrillResult {
  drill: string;
  target: string;
  /** Longest stretch without a successful new request that overlaps the failure (target ≤ 3 s). */
  newRequestGapSeconds: number;
  newRequestsFailed: number;
  newRequests: number;
  /** The same for the kept connection: until it noticed, reconnected and got an answer again. */
  longGapSeconds: number;
  /** When the kept connection first failed, after the failure; null if it never did. */
  longBrokenAfterSeconds: number | null;
  longError: string;
  /** Connections the long client used in all (1 = it never had to reconnect). */
  longConnections: number;
  /** The idle connection: seconds after the failure it was closed, or null if still open at the end. */
  idleClosedAfterSeconds: number | null;
  idleReason: string;
  /** Longest gap for new requests after the failed balancer came back (nopreempt: expected ~0). */
  healGapSeconds: number;
  takeoverSeconds: number | null;
  recoverySeconds: number;
  notes: string[];
}

const EVENT_AT = 5;

async function balancerDrill(name: string, target: string, fail: () => Promise<unknown>, failedOver: () => Promise<unknown>,
  restore: () => Promise<unknown>, recovered: () => Promise<unknown>): Promise<BalancerDrillResult> {
  const t0 = Date.now();
  const fresh = newRequestClient(t0), long = longConnectionClient(t0), idle = idleConnection(t0);
  await sleep(EVENT_AT * 1000);
  const tf = Date.now();
  await fail();
  const notes: string[] = [];
  let takeover: number | null = null;
  await until(`${name}: VIP away from ${target}`, failedOver, 60, 200)
    .then((s) => { takeover = Math.round(((Date.now() - tf) / 1000) * 10) / 10; notes.push(`VIP seen on the other balancer ${s.toFixed(1)} s after the failure (polled over SSH)`); },
      (e) => notes.push(String(e.message)));
  await sleep(3000);
  const healAt = (Date.now() - t0) / 1000;
  await restore();
  await until(`${name}: ${target} back as backup`, recovered, 180, 500);
  const recoverySeconds = Math.round((Date.now() - tf) / 100) / 10;
  await sleep(3000);
  const idleSeen = idle.stop();
  const [np, lp] = await Promise.all([fresh.stop(), long.stop()]);
  const end = (Date.now() - t0) / 1000;
  const firstLongErr = lp.find((p) => !p.ok && p.start >= EVENT_AT - 0.2);
  const failedNew = np.filter((p) => !p.ok && p.start >= EVENT_AT);
  const errKinds = [...new Set(failedNew.map((p) => p.err))].slice(0, 4);
  if (errKinds.length) notes.push(`new requests failed with: ${errKinds.join(", ")}`);
  return {
    drill: name, target,
    newRequestGapSeconds: gap(np, EVENT_AT, end), newRequestsFailed: failedNew.length, newRequests: np.length,
    longGapSeconds: gap(lp, EVENT_AT, end),
    longBrokenAfterSeconds: firstLongErr ? Math.round((firstLongErr.end - EVENT_AT) * 10) / 10 : null,
    longError: firstLongErr?.err ?? "",
    longConnections: new Set(lp.filter((p) => p.port).map((p) => p.port)).size,
    idleClosedAfterSeconds: idleSeen.closedAt !== undefined ? Math.round((idleSeen.closedAt - EVENT_AT) * 10) / 10 : null,
    idleReason: idleSeen.closedAt !== undefined ? idleSeen.reason : "still open at the end of the run",
    healGapSeconds: gap(np, healAt, end), takeoverSeconds: takeover, recoverySeconds, notes,
  };
}

const other = (name: string) => byRole("nginx").find((n) => n.name !== name)!.name;
const checkPasses = async (name: string) => (await ssh(name, "sh /etc/keepalived/hastack-nginx-check.sh && echo pass || echo fail", 10000)) === "pass";
async function holder(): Promise<string> {
  const h = await nginxVipHolders();
  if (h.length !== 1) throw new Error(`expected one nginx VIP holder, found ${JSON.stringify(h)}`);
  return h[0];
}

/**
 * The balancer VM holding the VIP loses power: its link goes down first (host side of its veth), then
 * its init is killed. Killing the init alone is gentler than a power cut: the kernel closes the dead
 * processes' sockets and the clients get a FIN at once (seen in the first runs), which a real crash never sends.
 */
export async function balancerCrash(): Promise<BalancerDrillResult> {
  const h = await holder();
  return balancerDrill("nginx-vip-holder-crash", h,
    async () => { await run("ip", ["link", "set", `vb-${h}`, "down"]); await crashVm(h); },
    () => holdsVip(other(h)),
    () => bootVm(h),
    async () => (await ssh(h, "systemctl is-active nginx keepalived | sort -u")) === "active" && await checkPasses(h) && (await nginxVipHolders()).length === 1);
}

/** nginx stopped on the VIP holder, keepalived still running: the HTTPS check must move the VIP. */
export async function balancerNginxStop(): Promise<BalancerDrillResult> {
  const h = await holder();
  return balancerDrill("nginx-stop-on-vip-holder", h,
    () => ssh(h, "systemctl stop nginx"),
    async () => (await nginxVipHolders()).join() === other(h),
    () => ssh(h, "systemctl start nginx"),
    async () => await checkPasses(h) && (await nginxVipHolders()).length === 1);
}

/**
 * The VIP holder loses every WorksPad node (nftables on it drops traffic to and from them) while
 * nginx and keepalived keep running: only a check that goes through nginx to a node notices.
 */
export async function balancerUpstreamCut(): Promise<BalancerDrillResult> {
  const h = await holder();
  return balancerDrill("nginx-holder-loses-upstreams", h,
    () => cutOff(h, byRole("workspad").map((w) => w.address)),
    async () => (await nginxVipHolders()).join() === other(h),
    () => heal([h]),
    // nginx skips the failed nodes for fail_timeout after the cut heals
    async () => await checkPasses(h) && (await nginxVipHolders()).length === 1);
}

// ---- sessions across client networks ---------------------------------------------------------

/** Client networks: one network namespace per /24, a veth on the lab bridge, on-link routes both ways (no router, no forwarding). */
const CLIENT_NET = "10.213.64.0/21";
const clientNets = (n: number) => Array.from({ length: n }, (_, k) => ({ ns: `hsc${k}`, veth: `hscv${k}`, address: `10.213.${64 + k}.2` }));
const sh = (cmd: string) => run("bash", ["-c", cmd], { timeout: 30000 });

async function clientsUp(n: number): Promise<void> {
  await clientsDown(n);
  for (const c of clientNets(n)) {
    await sh([
      `ip netns add ${c.ns}`,
      `ip link add ${c.veth} type veth peer name eth0 netns ${c.ns}`,
      `ip link set ${c.veth} master ${layout.bridge} up`,
      `ip -n ${c.ns} addr add ${c.address}/24 dev eth0`,
      `ip -n ${c.ns} link set lo up`, `ip -n ${c.ns} link set eth0 up`,
      `ip -n ${c.ns} route add ${layout.subnet} dev eth0`,
    ].join(" && "));
  }
  // the balancers answer clients of these networks on the same segment (runtime route: a reboot drops it)
  for (const b of byRole("nginx")) await ssh(b.name, `ip route replace ${CLIENT_NET} dev host0`);
}

async function clientsDown(n: number): Promise<void> {
  for (const c of clientNets(n)) await sh(`ip netns del ${c.ns} 2>/dev/null || true; ip link del ${c.veth} 2>/dev/null || true`);
  for (const b of byRole("nginx")) await ssh(b.name, `ip route del ${CLIENT_NET} dev host0 2>/dev/null || true`).catch(() => undefined);
}

/** The WorksPad node that answers each client network now (undefined: no answer). */
async function whoServes(n: number): Promise<Record<string, string | undefined>> {
  const out = await Promise.all(clientNets(n).map(async (c) => {
    try {
      const { stdout } = await run("ip", ["netns", "exec", c.ns, "curl", "-sk", "--max-time", "8", `https://${VIP}/health`], { timeout: 10000 });
      return [c.address, JSON.parse(stdout).node as string] as const;
    } catch { return [c.address, undefined] as const; }
  }));
  return Object.fromEntries(out);
}

/** Rounds of whoServes that must agree: a client's node must be stable, not a coin toss. */
async function stableServes(n: number, rounds = 3): Promise<Record<string, string | undefined>> {
  const seen: Record<string, string | undefined>[] = [];
  for (let i = 0; i < rounds; i++) { seen.push(await whoServes(n)); await sleep(500); }
  return Object.fromEntries(Object.keys(seen[0]).map((a) => [a, seen.every((s) => s[a] === seen[0][a]) ? seen[0][a] : "unstable"]));
}

export interface SessionsResult {
  drill: string;
  balanceMethod: string;
  networks: number;
  before: Record<string, string | undefined>;
  victim: string;
  duringCrash: Record<string, string | undefined>;
  afterReturn: Record<string, string | undefined>;
  /** Clients of the crashed node that moved to a live node. */
  movedClients: string[];
  /** Clients of other nodes that changed node anyway (should be none). */
  disturbedClients: string[];
  nodesUsedBefore: number;
  /** Seconds from the crash until every client network got an answer again. */
  allAnsweringAfterSeconds: number;
  /** After the crashed node returned (and fail_timeout passed), its clients were sent back to it. */
  victimClientsReturned: boolean;
  notes: string[];
}

/**
 * Clients from `n` networks (one /24 each) through the nginx VIP; the WorksPad node serving most of
 * them crashes. Only its own clients may move; every other client keeps its node.
 */
export async function sessionsAcrossNetworks(balanceMethod = "ipHash", n = 8): Promise<SessionsResult> {
  await clientsUp(n);
  try {
    const before = await stableServes(n);
    const notes: string[] = [];
    const counts = new Map<string, number>();
    for (const node of Object.values(before)) if (node) counts.set(node, (counts.get(node) ?? 0) + 1);
    const victim = [...counts.entries()].sort((a, b) => b[1] - a[1])[0][0];
    if (counts.size < 2) notes.push(`every client network landed on ${victim}: nothing shows that other clients stay put`);
    const tc = Date.now();
    await crashVm(victim);
    const allAnsweringAfterSeconds = Math.round(await until("every client network answered", async () =>
      Object.values(await whoServes(n)).every((x) => x !== undefined), 90, 500) * 10) / 10;
    const duringCrash = await stableServes(n);
    const mine = Object.keys(before).filter((a) => before[a] === victim);
    const movedClients = mine.filter((a) => duringCrash[a] && duringCrash[a] !== victim && duringCrash[a] !== "unstable");
    const disturbedClients = Object.keys(before).filter((a) => before[a] !== victim && duringCrash[a] !== before[a]);
    notes.push(`crash to every network answering: ${allAnsweringAfterSeconds} s (first request of a moved client waits for nginx to give up on the dead node)`);
    await bootVm(victim);
    await until(`${victim} healthy`, async () => (await ssh(victim, "curl -sk -o /dev/null -w '%{http_code}' --max-time 3 https://127.0.0.1:4430/health")) === "200", 120, 500);
    // nginx tries a failed node again after fail_timeout (10 s)
    await sleep(12000);
    const afterReturn = await stableServes(n);
    notes.push(`${Math.round((Date.now() - tc) / 1000)} s from the crash to the after-return sample`);
    return {
      drill: "sessions-across-networks", balanceMethod, networks: n, before, victim, duringCrash, afterReturn,
      movedClients, disturbedClients, nodesUsedBefore: counts.size, allAnsweringAfterSeconds,
      victimClientsReturned: mine.every((a) => afterReturn[a] === victim), notes,
    };
  } finally {
    await clientsDown(n);
  }
}
