// Where a lab deploy could leak a secret on the VMs: every world-readable file a VM wrote and every
// log it kept, read straight from each VM's disk (the overlay's upper layer holds exactly what the
// VM changed, so the host's own files are not searched).
import * as fs from "fs";
import * as path from "path";
import { leaks } from "./leaks";

const LAB_ROOT = "/var/lib/hastack-lab";

/** Files of one VM's disk worth searching: world-readable ones, and everything under /var/log. */
function candidates(upper: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const st = fs.statSync(p);
        if (st.size > 64 * 1024 * 1024) continue;
        if ((st.mode & 0o004) !== 0 || p.startsWith(path.join(upper, "var", "log"))) out.push(p);
      }
    }
  };
  if (fs.existsSync(upper)) walk(upper);
  return out;
}

/** One line per (file, secret) found on the named VMs' disks. */
export function leaksOnVmDisks(vms: readonly string[], secrets: readonly string[]): string[] {
  const found: string[] = [];
  for (const vm of vms) {
    const upper = path.join(LAB_ROOT, vm, "upper");
    for (const f of candidates(upper)) {
      const text = fs.readFileSync(f).toString("latin1");
      const mode = (fs.statSync(f).mode & 0o777).toString(8);
      found.push(...leaks(`${vm}:${f.slice(upper.length)} (mode ${mode})`, text, secrets));
    }
  }
  return found;
}
