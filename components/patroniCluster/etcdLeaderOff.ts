// Keeping etcd's raft leader off the Patroni leader's host (pure rendering): the shipped script
// `etcd-leader-off.py` and the systemd timer that runs it on every member. Why: a crash of the host
// that leads both costs ~3 s more of write outage (the new etcd leader renews every lease to its full
// ttl); see the script's header and bench/results-leader-crash.md.
import * as fs from "fs";
import * as path from "path";
import { HostSpec } from "../common";
import { ETCDCTL_ENV_PATH } from "./render";

export const ETCD_LEADER_OFF_PATH = "/usr/local/lib/hastack/etcd-leader-off";
export const ETCD_LEADER_OFF_UNIT = "hastack-etcd-leader-off";
export const ETCD_LEADER_OFF_SERVICE_PATH = `/etc/systemd/system/${ETCD_LEADER_OFF_UNIT}.service`;
export const ETCD_LEADER_OFF_TIMER_PATH = `/etc/systemd/system/${ETCD_LEADER_OFF_UNIT}.timer`;
/** Seconds between checks: after a failover the new Patroni leader is etcd's leader for at most about this long. */
export const ETCD_LEADER_OFF_EVERY_S = 5;

export function etcdLeaderOffScript(): string {
  return fs.readFileSync(path.join(__dirname, "etcd-leader-off.py"), "utf8");
}

/** The oneshot service: this member's own Patroni /primary and etcd client URL, root's etcd login file. */
export function renderEtcdLeaderOffService(member: HostSpec, restApiPort: number, etcdClientPort: number): string {
  return [
    "# Managed by hastack (PatroniCluster): moves etcd's raft leader away when this host also leads Patroni.",
    "[Unit]",
    "Description=hastack: keep the etcd leader off the Patroni leader's host",
    "After=etcd.service patroni.service",
    "",
    "[Service]",
    "Type=oneshot",
    `ExecStart=${ETCD_LEADER_OFF_PATH} http://${member.address}:${restApiPort}/primary http://${member.address}:${etcdClientPort} ${ETCDCTL_ENV_PATH}`,
    "",
  ].join("\n");
}

export function renderEtcdLeaderOffTimer(): string {
  return [
    "# Managed by hastack (PatroniCluster).",
    "[Unit]",
    "Description=hastack: keep the etcd leader off the Patroni leader's host, every few seconds",
    "",
    "[Timer]",
    "OnActiveSec=10s",
    `OnUnitActiveSec=${ETCD_LEADER_OFF_EVERY_S}s`,
    "AccuracySec=1s",
    "",
    "[Install]",
    "WantedBy=timers.target",
    "",
  ].join("\n");
}
