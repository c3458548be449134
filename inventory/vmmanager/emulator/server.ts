// A VMmanager 6 API emulator: the endpoints and error shapes the client uses, in memory, with
// fault injection for tests (503 storms, dropped connections, lost answers, slow and failing
// tasks, expired tokens, addresses already taken). What is modelled on published behaviour and
// what is invented here is listed in ../README.md.
import * as crypto from "crypto";
import * as http from "http";
import { AddressInfo } from "net";
import { matches, parseWhere, WhereSyntaxError } from "./where";

/** A host as the emulator stores it (and the list endpoint returns it). */
export interface EmulatedHost {
  id: number;
  name: string;
  state: "creating" | "active" | "creation_failed" | "deleting";
  cpu_number: number;
  ram_mib: number;
  disk: { id: number; disk_mib: number };
  ip4: { id: number; ip: string }[];
  cluster: { id: number };
  node: { id: number };
  os: { id: number } | null;
  image: { id: number } | null;
  comment: string;
}

export interface EmulatedTask {
  id: number;
  consul_id: string;
  name: string;
  status: "created" | "running" | "complete" | "fail";
  output: string;
  instance_id: number;
}

/**
 * Where the emulator's "create host" meets real machines. The default keeps VMs in memory only;
 * the lab can plug in a hook that boots an nspawn VM with the requested address (and removes it
 * on delete). A hook that throws fails the task with the hook's message.
 */
export interface EmulatorHooks {
  createHost?(host: Readonly<EmulatedHost>): Promise<void>;
  deleteHost?(host: Readonly<EmulatedHost>): Promise<void>;
}

export interface EmulatorOptions {
  /** Users by e-mail with their password. @default {"admin@example.com": "emulator-password"} */
  readonly users?: Readonly<Record<string, string>>;
  /** IPv4 pools. @default [{ id: 1, cidr: "10.213.7.0/24" }] */
  readonly pools?: readonly { id: number; cidr: string }[];
  /** Clusters and their node ids. @default [{ id: 1, nodes: [1] }] */
  readonly clusters?: readonly { id: number; nodes: number[] }[];
  /** OS template ids. @default [1] */
  readonly osTemplates?: readonly number[];
  /** Image ids. @default [] */
  readonly images?: readonly number[];
  /** How long a task takes. @default 30 */
  readonly taskMs?: number;
  /** Tokens expire this long after login. @default no expiry */
  readonly tokenTtlMs?: number;
  readonly hooks?: EmulatorHooks;
  /**
   * Hosts a previous run of the emulator left (lab/vmmanager.ts keeps them in a file between runs,
   * since its VMs outlive the process); ids carry on after the highest. @default []
   */
  readonly initialHosts?: readonly EmulatedHost[];
  /** @default "127.0.0.1" */
  readonly listenHost?: string;
  /** @default 0 (a free port) */
  readonly port?: number;
}

/** Error codes the emulator answers with. 3001 is published; the others are this emulator's own. */
export const ERR = {
  unauthorized: 3001,
  badLogin: 3004,
  badParam: 4000,
  notFound: 4004,
  addressTaken: 5015,
  addressOutsidePool: 5016,
  diskShrink: 5020,
  busy: 5030,
} as const;

class ApiFail extends Error {
  constructor(readonly status: number, readonly code: number, msg: string, readonly value?: unknown) { super(msg); }
}

export interface RequestLog { method: string; url: string; status: number | "dropped" | "answer lost"; }

function ipToInt(ip: string): number { return ip.split(".").reduce((a, o) => a * 256 + Number(o), 0); }
function intToIp(n: number): string { return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join("."); }
function poolRange(cidr: string): [number, number] {
  const [net, bits] = cidr.split("/");
  const size = 2 ** (32 - Number(bits));
  const base = ipToInt(net) - (ipToInt(net) % size);
  return [base + 1, base + size - 2];
}

export class VmManagerEmulator {
  readonly hosts = new Map<number, EmulatedHost>();
  readonly tasks: EmulatedTask[] = [];
  readonly requests: RequestLog[] = [];
  /** Addresses taken outside the hosts (another system's VM, a router…), by address. */
  readonly reserved = new Set<string>();
  private readonly tokens = new Map<string, number>();
  private readonly server: http.Server;
  private readonly o: Required<Omit<EmulatorOptions, "tokenTtlMs" | "hooks" | "initialHosts">> & Pick<EmulatorOptions, "tokenTtlMs" | "hooks">;
  private nextId = { host: 1, disk: 1, task: 1, ip: 1 };
  private fault = { unavailable: 0, drop: 0, loseAnswers: 0, expireAt: 0, failTasks: [] as { name?: string; message: string }[], taskMs: undefined as number | undefined };
  url = "";

  constructor(opts: EmulatorOptions = {}) {
    this.o = {
      users: opts.users ?? { "admin@example.com": "emulator-password" },
      pools: opts.pools ?? [{ id: 1, cidr: "10.213.7.0/24" }],
      clusters: opts.clusters ?? [{ id: 1, nodes: [1] }],
      osTemplates: opts.osTemplates ?? [1],
      images: opts.images ?? [],
      taskMs: opts.taskMs ?? 30,
      tokenTtlMs: opts.tokenTtlMs,
      hooks: opts.hooks,
      listenHost: opts.listenHost ?? "127.0.0.1",
      port: opts.port ?? 0,
    };
    for (const h of opts.initialHosts ?? []) {
      this.hosts.set(h.id, JSON.parse(JSON.stringify(h)));
      this.nextId.host = Math.max(this.nextId.host, h.id + 1);
      this.nextId.disk = Math.max(this.nextId.disk, h.disk.id + 1);
      this.nextId.ip = Math.max(this.nextId.ip, ...h.ip4.map((i) => i.id + 1));
    }
    this.server = http.createServer((req, res) => {
      // a bug in the emulator answers 500 with its message rather than crashing the test process
      this.handle(req, res).catch((e: Error) => {
        if (!res.headersSent) res.writeHead(500, { "Content-Type": "application/json" }).end(JSON.stringify({ error: { code: 500, msg: e.message } }));
      });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.o.port, this.o.listenHost, () => resolve());
    });
    const a = this.server.address() as AddressInfo;
    this.url = `http://${a.address}:${a.port}`;
    return this;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  // ---- fault injection ----
  /** The next `n` requests get HTTP 503 with an HTML body, like a suspended VMmanager behind nginx. */
  unavailable(n: number): void { this.fault.unavailable = n; }
  /** The next `n` requests have their connection closed before anything is done. */
  dropConnections(n: number): void { this.fault.drop = n; }
  /** The next `n` POST/DELETE requests are carried out, then their connection is closed unanswered. */
  loseAnswers(n: number): void { this.fault.loseAnswers = n; }
  /** Tasks take this long from now on. */
  slowTasks(ms: number): void { this.fault.taskMs = ms; }
  /** The next task (named `name`, or any) fails with `message`. Calls queue up. */
  failNextTask(message: string, name?: string): void { this.fault.failTasks.push({ name, message }); }
  /** Every token issued so far stops working (HTTP 401), as after a VMmanager restart or session timeout. */
  expireTokens(): void { this.tokens.clear(); }
  /** The `n`-th request from now finds every token issued before it expired (deterministic, unlike a timer). */
  expireTokensAt(n: number): void { this.fault.expireAt = n; }
  /** Someone outside this stack holds `ip`. */
  takeAddress(ip: string): void { this.reserved.add(ip); }

  // ---- changes behind the API client's back ----
  removeHost(id: number): void { this.hosts.delete(id); }
  changeHost(id: number, patch: Partial<Pick<EmulatedHost, "cpu_number" | "ram_mib">> & { disk_mib?: number }): void {
    const h = this.hosts.get(id);
    if (!h) throw new Error(`no host ${id}`);
    if (patch.cpu_number !== undefined) h.cpu_number = patch.cpu_number;
    if (patch.ram_mib !== undefined) h.ram_mib = patch.ram_mib;
    if (patch.disk_mib !== undefined) h.disk.disk_mib = patch.disk_mib;
  }
  /** A host made outside Pulumi (for adoption tests), active at once. */
  addHost(spec: { name: string; ip: string; cpu?: number; ramMib?: number; diskMib?: number; cluster?: number; os?: number }): EmulatedHost {
    const h: EmulatedHost = {
      id: this.nextId.host++, name: spec.name, state: "active",
      cpu_number: spec.cpu ?? 1, ram_mib: spec.ramMib ?? 1024, disk: { id: this.nextId.disk++, disk_mib: spec.diskMib ?? 10240 },
      ip4: [{ id: this.nextId.ip++, ip: spec.ip }], cluster: { id: spec.cluster ?? this.o.clusters[0].id },
      node: { id: this.o.clusters[0].nodes[0] }, os: { id: spec.os ?? this.o.osTemplates[0] }, image: null, comment: "",
    };
    this.hosts.set(h.id, h);
    return h;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = req.method ?? "GET";
    const url = new URL(req.url ?? "/", "http://emulator");
    const log: RequestLog = { method, url: req.url ?? "/", status: 0 };
    this.requests.push(log);
    if (this.fault.expireAt > 0 && --this.fault.expireAt === 0) this.expireTokens();
    if (this.fault.drop > 0) {
      this.fault.drop--;
      log.status = "dropped";
      req.socket.destroy();
      return;
    }
    const body = await new Promise<string>((resolve) => {
      let s = "";
      req.on("data", (c) => (s += c));
      req.on("end", () => resolve(s));
    });
    if (this.fault.unavailable > 0) {
      this.fault.unavailable--;
      log.status = 503;
      res.writeHead(503, { "Content-Type": "text/html" }).end("<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>");
      return;
    }
    let status = 200;
    let out: unknown;
    try {
      let json: Record<string, unknown> = {};
      if (body) {
        try { json = JSON.parse(body); } catch { throw new ApiFail(400, ERR.badParam, "Request body is not JSON"); }
      }
      [status, out] = await this.route(method, url, req.headers, json);
    } catch (e) {
      if (!(e instanceof ApiFail)) throw e;
      status = e.status;
      out = { error: { code: e.code, msg: e.message, value: e.value ?? {} } };
    }
    if ((method === "POST" || method === "DELETE") && status < 300 && this.fault.loseAnswers > 0 && !url.pathname.startsWith("/auth/")) {
      this.fault.loseAnswers--;
      log.status = "answer lost";
      req.socket.destroy();
      return;
    }
    log.status = status;
    res.writeHead(status, { "Content-Type": "application/json" }).end(JSON.stringify(out));
  }

  private async route(method: string, url: URL, headers: http.IncomingHttpHeaders, body: Record<string, unknown>): Promise<[number, unknown]> {
    const p = url.pathname.replace(/\/+$/, "");
    if (method === "POST" && p === "/auth/v4/public/token") return [201, this.login(body)];
    this.authorize(headers);
    let m: RegExpExecArray | null;
    if (method === "GET" && p === "/vm/v3/host") return [200, this.list([...this.hosts.values()], url)];
    if (method === "GET" && (m = /^\/vm\/v3\/host\/(\d+)$/.exec(p))) return [200, this.host(Number(m[1]))];
    if (method === "POST" && p === "/vm/v3/host") return [200, this.create(body)];
    if (method === "POST" && (m = /^\/vm\/v3\/host\/(\d+)\/resource$/.exec(p))) return [200, this.resources(Number(m[1]), body)];
    if (method === "POST" && (m = /^\/vm\/v3\/disk\/(\d+)$/.exec(p))) return [200, this.disk(Number(m[1]), body)];
    if (method === "DELETE" && (m = /^\/vm\/v3\/host\/(\d+)$/.exec(p))) return [200, this.remove(Number(m[1]))];
    if (method === "GET" && p === "/vm/v3/task") return [200, this.list(this.tasks, url)];
    throw new ApiFail(404, ERR.notFound, `No handler for ${method} ${p}`);
  }

  private login(body: Record<string, unknown>): unknown {
    const { email, password } = body;
    if (typeof email !== "string" || typeof password !== "string" || this.o.users[email] !== password) {
      throw new ApiFail(401, ERR.badLogin, "Invalid email or password");
    }
    const token = crypto.randomBytes(16).toString("hex");
    this.tokens.set(token, this.o.tokenTtlMs === undefined ? Infinity : Date.now() + this.o.tokenTtlMs);
    return { id: token.slice(0, 8), token };
  }

  private authorize(headers: http.IncomingHttpHeaders): void {
    const t = headers["x-xsrf-token"];
    const exp = typeof t === "string" ? this.tokens.get(t) : undefined;
    if (exp === undefined || exp < Date.now()) throw new ApiFail(401, ERR.unauthorized, "Unauthorized");
  }

  private list<T>(items: T[], url: URL): unknown {
    const where = url.searchParams.get("where");
    let list = items;
    if (where) {
      try {
        const tree = parseWhere(where);
        list = items.filter((i) => matches(tree, i));
      } catch (e) {
        if (e instanceof WhereSyntaxError) throw new ApiFail(400, ERR.badParam, e.message, { where });
        throw e;
      }
    }
    return { list: JSON.parse(JSON.stringify(list)), size: list.length };
  }

  private host(id: number): EmulatedHost {
    const h = this.hosts.get(id);
    if (!h) throw new ApiFail(404, ERR.notFound, `Host ${id} not found`, { id });
    return h;
  }

  private int(body: Record<string, unknown>, key: string, required = true): number | undefined {
    const v = body[key];
    if (v === undefined && !required) return undefined;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw new ApiFail(400, ERR.badParam, `Invalid parameter ${key}`, { field: key, given: v ?? null });
    return v;
  }

  private create(body: Record<string, unknown>): unknown {
    const name = body.name;
    if (typeof name !== "string" || name === "") throw new ApiFail(400, ERR.badParam, "Invalid parameter name", { field: "name" });
    const clusterId = this.int(body, "cluster")!;
    const cluster = this.o.clusters.find((c) => c.id === clusterId);
    if (!cluster) throw new ApiFail(400, ERR.badParam, `Cluster ${clusterId} not found`, { field: "cluster" });
    const node = this.int(body, "node", false) ?? cluster.nodes[0];
    if (!cluster.nodes.includes(node)) throw new ApiFail(400, ERR.badParam, `Node ${node} is not in cluster ${clusterId}`, { field: "node" });
    const os = this.int(body, "os", false), image = this.int(body, "image", false);
    if ((os === undefined) === (image === undefined)) throw new ApiFail(400, ERR.badParam, "Exactly one of os and image is required", { field: "os" });
    if (os !== undefined && !this.o.osTemplates.includes(os)) throw new ApiFail(400, ERR.badParam, `OS template ${os} not found`, { field: "os" });
    if (image !== undefined && !this.o.images.includes(image)) throw new ApiFail(400, ERR.badParam, `Image ${image} not found`, { field: "image" });
    const cpu = this.int(body, "cpu_number")!, ram = this.int(body, "ram_mib")!, hdd = this.int(body, "hdd_mib")!;
    if (typeof body.password !== "string" || body.password.length < 8) throw new ApiFail(400, ERR.badParam, "Invalid parameter password", { field: "password" });
    const pools = body.ipv4_pool;
    const poolId = Array.isArray(pools) ? pools[0] : undefined;
    const pool = this.o.pools.find((x) => x.id === poolId);
    if (!pool) throw new ApiFail(400, ERR.badParam, `IP pool ${JSON.stringify(poolId)} not found`, { field: "ipv4_pool" });
    const iface = Array.isArray(body.custom_interfaces) ? (body.custom_interfaces[0] as { ip_name?: unknown } | undefined) : undefined;
    const [lo, hi] = poolRange(pool.cidr);
    const used = new Set([...this.reserved, ...[...this.hosts.values()].flatMap((h) => h.ip4.map((i) => i.ip))]);
    let ip: string;
    if (typeof iface?.ip_name === "string") {
      ip = iface.ip_name;
      if (!/^\d+\.\d+\.\d+\.\d+$/.test(ip) || ipToInt(ip) < lo || ipToInt(ip) > hi) {
        throw new ApiFail(400, ERR.addressOutsidePool, `IP address ${ip} is not in pool ${pool.id} (${pool.cidr})`, { ip, pool: pool.id });
      }
      if (used.has(ip)) throw new ApiFail(400, ERR.addressTaken, `IP address ${ip} is already in use`, { ip });
    } else {
      let n = lo;
      while (n <= hi && used.has(intToIp(n))) n++;
      if (n > hi) throw new ApiFail(400, ERR.addressTaken, `IP pool ${pool.id} has no free address`, { pool: pool.id });
      ip = intToIp(n);
    }
    const h: EmulatedHost = {
      id: this.nextId.host++, name, state: "creating", cpu_number: cpu, ram_mib: ram,
      disk: { id: this.nextId.disk++, disk_mib: hdd }, ip4: [{ id: this.nextId.ip++, ip }],
      cluster: { id: clusterId }, node: { id: node }, os: os !== undefined ? { id: os } : null,
      image: image !== undefined ? { id: image } : null, comment: typeof body.comment === "string" ? body.comment : "",
    };
    this.hosts.set(h.id, h);
    const task = this.task("host_create", h.id, async () => {
      await this.o.hooks?.createHost?.(h);
      h.state = "active";
    }, () => { h.state = "creation_failed"; });
    return { id: h.id, task: task.consul_id };
  }

  private busy(h: EmulatedHost): void {
    if (h.state !== "active") throw new ApiFail(409, ERR.busy, `Host ${h.id} is ${h.state}`, { id: h.id, state: h.state });
  }

  private resources(id: number, body: Record<string, unknown>): unknown {
    const h = this.host(id);
    this.busy(h);
    const cpu = this.int(body, "cpu_number", false), ram = this.int(body, "ram_mib", false);
    const t = this.task("host_change_params", id, async () => {
      if (cpu !== undefined) h.cpu_number = cpu;
      if (ram !== undefined) h.ram_mib = ram;
    });
    return { id, task: t.consul_id };
  }

  private disk(diskId: number, body: Record<string, unknown>): unknown {
    const h = [...this.hosts.values()].find((x) => x.disk.id === diskId);
    if (!h) throw new ApiFail(404, ERR.notFound, `Disk ${diskId} not found`, { id: diskId });
    this.busy(h);
    const size = this.int(body, "size_mib")!;
    if (size < h.disk.disk_mib) throw new ApiFail(400, ERR.diskShrink, `Disk ${diskId} cannot be shrunk from ${h.disk.disk_mib} MiB to ${size} MiB`, { id: diskId });
    const t = this.task("disk_resize", h.id, async () => { h.disk.disk_mib = size; });
    return { id: diskId, task: t.consul_id };
  }

  private remove(id: number): unknown {
    const h = this.host(id);
    if (h.state === "deleting") throw new ApiFail(409, ERR.busy, `Host ${id} is being deleted`, { id });
    const before = h.state;
    h.state = "deleting";
    const t = this.task("host_delete", id, async () => {
      await this.o.hooks?.deleteHost?.(h);
      this.hosts.delete(id);
    }, () => { h.state = before; });
    return { task: t.consul_id };
  }

  /** Run `work` as a task after the task delay; an injected failure or a throwing hook fails it. */
  private task(name: string, instance: number, work: () => Promise<void>, onFail?: () => void): EmulatedTask {
    const t: EmulatedTask = { id: this.nextId.task++, consul_id: crypto.randomBytes(8).toString("hex"), name, status: "created", output: "", instance_id: instance };
    this.tasks.push(t);
    const i = this.fault.failTasks.findIndex((f) => f.name === undefined || f.name === name);
    const injected = i >= 0 ? this.fault.failTasks.splice(i, 1)[0].message : undefined;
    const ms = this.fault.taskMs ?? this.o.taskMs;
    setTimeout(() => {
      t.status = "running";
      setTimeout(() => {
        (injected !== undefined ? Promise.reject(new Error(injected)) : work()).then(
          () => { t.status = "complete"; },
          (e: Error) => { onFail?.(); t.status = "fail"; t.output = e.message; },
        );
      }, ms / 2).unref();
    }, ms / 2).unref(); // a slow task never keeps a test process alive
    return t;
  }
}

export async function startEmulator(opts: EmulatorOptions = {}): Promise<VmManagerEmulator> {
  return new VmManagerEmulator(opts).start();
}
