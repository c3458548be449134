// A small typed client for the VMmanager 6 API (https://docs.ispsystem.com/vmmanager-admin/developer-section/api-guide):
// login, host create/read/resize/delete and task polling. Which fields are verified and which are
// assumptions is listed in ./README.md.
import axios, { AxiosError, AxiosInstance, Method } from "axios";

export interface Credentials {
  /** Base URL of the VMmanager instance, e.g. https://vm.example.com (no trailing path). */
  readonly url: string;
  /** Login e-mail of a VMmanager user allowed to create hosts. */
  readonly email: string;
  /** Its password; sent only in the body of the token request. */
  readonly password: string;
}

/** Timing knobs; the defaults suit a real VMmanager, tests shrink them. */
export interface ClientTiming {
  /** Tries of one request that meets HTTP 503 or a connection error. @default 8 */
  readonly attempts?: number;
  /** First wait before a retry, doubled each time up to maxBackoffMs. @default 500 */
  readonly backoffMs?: number;
  /** @default 10000 */
  readonly maxBackoffMs?: number;
  /** Interval between two task (or host state) polls. @default 2000 */
  readonly pollMs?: number;
  /** How long a task may run before the client gives up on it. @default 1800000 (30 min: an OS install) */
  readonly taskTimeoutMs?: number;
  /** Timeout of one HTTP request. @default 60000 */
  readonly requestTimeoutMs?: number;
}

export const DEFAULT_TIMING: Required<ClientTiming> = {
  attempts: 8, backoffMs: 500, maxBackoffMs: 10000, pollMs: 2000, taskTimeoutMs: 1800000, requestTimeoutMs: 60000,
};

/** A VMmanager host (VM) as the list endpoint returns it; only the fields this program reads. */
export interface Host {
  readonly id: number;
  readonly name: string;
  /** e.g. "creating", "active", "stopped" */
  readonly state: string;
  readonly cpu_number: number;
  readonly ram_mib: number;
  readonly disk: { readonly id: number; readonly disk_mib: number };
  readonly ip4: readonly { readonly id?: number; readonly ip: string }[];
  readonly cluster: { readonly id: number };
  readonly node?: { readonly id: number } | null;
  readonly os?: { readonly id: number } | null;
  readonly image?: { readonly id: number } | null;
  readonly comment?: string | null;
}

export interface Task {
  readonly id: number;
  readonly consul_id: string;
  readonly name: string;
  /** "created" | "running" | "complete" | "fail" */
  readonly status: string;
  readonly output?: string | null;
}

export interface CreateHostSpec {
  readonly name: string;
  readonly cluster: number;
  readonly node?: number;
  /** Exactly one of os (OS template id) and image (image id). */
  readonly os?: number;
  readonly image?: number;
  readonly cpu: number;
  readonly ramMib: number;
  readonly diskMib: number;
  readonly ipPool: number;
  /** The IPv4 address the plan gives this VM; VMmanager must hand out exactly this one. */
  readonly address: string;
  /** Root password of the new VM (VMmanager requires one); never logged. */
  readonly rootPassword: string;
  readonly comment?: string;
}

/**
 * A failure VMmanager reported (or a transport failure after all retries). The message names the
 * operation, the HTTP status and VMmanager's own error code and text; never a request body.
 */
export class VmManagerError extends Error {
  constructor(
    readonly operation: string,
    readonly status: number | undefined,
    readonly code: number | undefined,
    readonly apiMessage: string,
  ) {
    super(`VMmanager ${operation} failed: ${status === undefined ? "" : `HTTP ${status}, `}${code === undefined ? "" : `error ${code}: `}${apiMessage}`);
    this.name = "VmManagerError";
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Quote a value for a `where` filter: strings in single quotes (a quote inside escaped), numbers bare. */
export function whereValue(v: string | number): string {
  return typeof v === "number" ? String(v) : `'${v.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

/** `(a EQ 'x') AND (b EQ 2)`: the filter syntax of the VMmanager list endpoints. */
export function whereEq(fields: Readonly<Record<string, string | number>>): string {
  return Object.entries(fields).map(([k, v]) => `(${k} EQ ${whereValue(v)})`).join(" AND ");
}

interface Attempt { status?: number; data?: unknown; transport?: string }

export class VmManagerClient {
  private readonly http: AxiosInstance;
  private readonly t: Required<ClientTiming>;
  private token?: string;

  constructor(private readonly creds: Credentials, timing: ClientTiming = {}) {
    this.t = { ...DEFAULT_TIMING, ...timing };
    this.http = axios.create({
      baseURL: creds.url.replace(/\/+$/, ""),
      timeout: this.t.requestTimeoutMs,
      // every status is handled below, so axios never throws an error that carries the request body
      validateStatus: () => true,
      headers: { "Content-Type": "application/json", Accept: "application/json" },
    });
  }

  /** POST /auth/v4/public/token with e-mail and password; keeps the token for the x-xsrf-token header. */
  async login(): Promise<void> {
    const r = await this.send("POST", "/auth/v4/public/token", { email: this.creds.email, password: this.creds.password }, false, true);
    const token = (r as { token?: unknown } | undefined)?.token;
    if (typeof token !== "string" || token === "") throw new VmManagerError("login", undefined, undefined, "the token response carries no token");
    this.token = token;
  }

  /**
   * One API call: 503 and connection errors are retried with backoff (only when `retryTransport`
   * allows it for connection errors, since a lost answer may hide a request that was carried out),
   * HTTP 401 logs in again once, any other failure throws a VmManagerError.
   */
  async request<T>(method: Method, path: string, body?: unknown, retryTransport = true): Promise<T> {
    if (!this.token) await this.login();
    let relogged = false;
    for (;;) {
      try {
        return await this.send<T>(method, path, body, true, retryTransport);
      } catch (e) {
        // the token expired or was revoked: one fresh login, then the same request again
        if (e instanceof VmManagerError && e.status === 401 && !relogged) {
          relogged = true;
          await this.login();
          continue;
        }
        throw e;
      }
    }
  }

  private async send<T>(method: Method, path: string, body: unknown, auth: boolean, retryTransport: boolean): Promise<T> {
    const op = `${method} ${path.split("?")[0]}`;
    let last: Attempt = {};
    for (let attempt = 1; attempt <= this.t.attempts; attempt++) {
      if (attempt > 1) await sleep(Math.min(this.t.maxBackoffMs, this.t.backoffMs * 2 ** (attempt - 2)));
      try {
        const r = await this.http.request({
          method, url: path, data: body,
          headers: auth && this.token ? { "x-xsrf-token": this.token } : {},
        });
        if (r.status === 503) { last = { status: 503, data: r.data }; continue; }
        if (r.status >= 200 && r.status < 300) return r.data as T;
        throw apiError(op, r.status, r.data);
      } catch (e) {
        if (e instanceof VmManagerError) throw e;
        const code = (e as AxiosError).code ?? "";
        const transport = `${code || "connection error"}${(e as Error).message ? ` (${(e as Error).message})` : ""}`;
        if (!retryTransport) throw new TransportError(op, transport);
        last = { transport };
      }
    }
    if (last.status === 503) throw apiError(op, 503, last.data, `still unavailable after ${this.t.attempts} tries`);
    throw new VmManagerError(op, undefined, undefined, `no answer after ${this.t.attempts} tries: ${last.transport}`);
  }

  /** Hosts matching a `where` filter (GET /vm/v3/host?where=…). */
  async listHosts(where: string): Promise<Host[]> {
    const r = await this.request<{ list?: Host[] }>("GET", `/vm/v3/host?where=${encodeURIComponent(where)}`);
    return r.list ?? [];
  }

  /** The host with this id, or undefined when VMmanager has none (deleted, or never existed). */
  async findHost(id: number): Promise<Host | undefined> {
    return (await this.listHosts(whereEq({ id })))[0];
  }

  async findHostsByName(name: string): Promise<Host[]> {
    return this.listHosts(whereEq({ name }));
  }

  /**
   * POST /vm/v3/host, then wait for its host_create task. When the answer to the POST is lost, the
   * VM may exist anyway: it is looked up by name (the caller made sure the name was free) rather
   * than created twice.
   */
  async createHost(spec: CreateHostSpec): Promise<Host> {
    const body = {
      name: spec.name,
      cluster: spec.cluster,
      ...(spec.node !== undefined ? { node: spec.node } : {}),
      ...(spec.os !== undefined ? { os: spec.os } : { image: spec.image }),
      cpu_number: spec.cpu,
      ram_mib: spec.ramMib,
      hdd_mib: spec.diskMib,
      ipv4_number: 1,
      ipv4_pool: [spec.ipPool],
      custom_interfaces: [{ ippool: spec.ipPool, ip_name: spec.address, ip_count: 1 }],
      password: spec.rootPassword,
      comment: spec.comment ?? "",
    };
    let created: { id: number; task?: string } | undefined;
    for (let attempt = 1; !created; attempt++) {
      try {
        created = await this.request<{ id: number; task: string }>("POST", "/vm/v3/host", body, false);
      } catch (e) {
        if (!(e instanceof TransportError)) throw e;
        const found = await this.findHostsByName(spec.name);
        if (found.length > 0) created = { id: found[0].id };
        else if (attempt >= this.t.attempts) throw new VmManagerError(e.operation, undefined, undefined, `no answer after ${attempt} tries: ${e.transport}`);
        else await sleep(Math.min(this.t.maxBackoffMs, this.t.backoffMs * 2 ** (attempt - 1)));
      }
    }
    const id = created.id;
    try {
      if (created.task !== undefined) await this.waitTask(created.task, "host_create");
      else await this.waitHostActive(id);
    } catch (e) {
      throw new HostCreateError(id, e as Error);
    }
    const host = await this.findHost(id);
    if (!host) throw new HostCreateError(id, new VmManagerError("host_create", undefined, undefined, `host ${id} is gone after its task completed`));
    return host;
  }

  /** Poll GET /vm/v3/task until the task named `name` with this consul_id is complete; throw on fail. */
  async waitTask(consulId: string, name: string): Promise<Task> {
    const deadline = Date.now() + this.t.taskTimeoutMs;
    for (;;) {
      const r = await this.request<{ list?: Task[] }>("GET", `/vm/v3/task?where=${encodeURIComponent(whereEq({ consul_id: consulId, name }))}`);
      const task = r.list?.[0];
      if (task?.status === "complete") return task;
      if (task?.status === "fail") {
        throw new VmManagerError(`task ${name} (${consulId})`, undefined, undefined, `the task failed: ${task.output || "VMmanager gave no reason"}`);
      }
      if (Date.now() > deadline) {
        throw new VmManagerError(`task ${name} (${consulId})`, undefined, undefined, `not complete after ${Math.round(this.t.taskTimeoutMs / 1000)} s (last status: ${task?.status ?? "not listed yet"})`);
      }
      await sleep(this.t.pollMs);
    }
  }

  private async waitHostActive(id: number): Promise<void> {
    const deadline = Date.now() + this.t.taskTimeoutMs;
    for (;;) {
      const h = await this.findHost(id);
      if (h?.state === "active") return;
      if (!h || h.state !== "creating") throw new VmManagerError(`host_create of host ${id}`, undefined, undefined, `the host is ${h ? `in state ${h.state}` : "gone"}`);
      if (Date.now() > deadline) throw new VmManagerError(`host_create of host ${id}`, undefined, undefined, `still creating after ${Math.round(this.t.taskTimeoutMs / 1000)} s`);
      await sleep(this.t.pollMs);
    }
  }

  /** CPU and RAM: POST /vm/v3/host/{id}/resource, task host_change_params. */
  async changeResources(id: number, cpu: number, ramMib: number): Promise<void> {
    const r = await this.request<{ task: string }>("POST", `/vm/v3/host/${id}/resource`, { cpu_number: cpu, ram_mib: ramMib });
    await this.waitTask(r.task, "host_change_params");
  }

  /** Disk growth only (VMmanager does not shrink disks): POST /vm/v3/disk/{diskId}, task disk_resize. */
  async resizeDisk(diskId: number, sizeMib: number): Promise<void> {
    const r = await this.request<{ task: string }>("POST", `/vm/v3/disk/${diskId}`, { size_mib: sizeMib });
    await this.waitTask(r.task, "disk_resize");
  }

  /** DELETE /vm/v3/host/{id} and wait for host_delete; a host that is already gone counts as deleted. */
  async deleteHost(id: number): Promise<void> {
    if (!(await this.findHost(id))) return;
    const r = await this.request<{ task: string }>("DELETE", `/vm/v3/host/${id}`);
    await this.waitTask(r.task, "host_delete");
  }
}

/** A connection error on a request that must not be repeated blindly. */
class TransportError extends Error {
  constructor(readonly operation: string, readonly transport: string) {
    super(`VMmanager ${operation}: ${transport}`);
  }
}

/** The host was made but did not become ready; the caller decides whether to delete or record it. */
export class HostCreateError extends Error {
  constructor(readonly hostId: number, readonly reason: Error) {
    super(reason.message);
    this.name = "HostCreateError";
  }
}

function apiError(op: string, status: number, data: unknown, fallback?: string): VmManagerError {
  const err = (data as { error?: { code?: unknown; msg?: unknown } } | undefined)?.error;
  const code = typeof err?.code === "number" ? err.code : undefined;
  const msg = typeof err?.msg === "string" ? err.msg : fallback ?? (typeof data === "string" && data ? data.slice(0, 200) : "no error text");
  return new VmManagerError(op, status, code, msg);
}
