import * as pulumi from "@pulumi/pulumi";
import { HostSpec, SshAccess, connectionFor } from "../common/host";
import { sha256 } from "../common/hash";
import { installPackages, putFile, restartOnChange, runScript } from "../common/remote";
import { shq } from "../common/shell";
import { FirewallTable, deleteTableScript, nftPath, renderAdmitScript, renderFirewallUnit, renderNftTable, unitName, unitPath } from "./render";

export interface HostFirewallArgs {
  readonly host: HostSpec;
  readonly ssh: SshAccess;
  /** The component's table: its ports and who may reach them. */
  readonly table: FirewallTable;
  /** Steps the new rules wait for (the database layer's hand-over away from a leader the stack removes). */
  readonly after?: pulumi.Resource[];
  /**
   * Steps a changed table waits for before it loads (the balancer no longer routing to an app node the table stops
   * admitting). What the new table admits gets in at once all the same (the `-admit` step, `admitted`): a node the
   * stack adds reaches these ports before those steps, which may wait for that very node. @default none (no -admit step)
   */
  readonly narrowAfter?: pulumi.Resource[];
}

/**
 * One component's nftables table on one host: file checked with `nft -c` before the swap, loaded
 * atomically, loaded again at every boot by a unit of ours; destroy removes the table. With `narrowAfter` a change
 * widens the live table at once and loads the rendered one (which may narrow it) only after those steps.
 */
export class HostFirewall extends pulumi.ComponentResource {
  /** The table as rendered is loaded (at every change, after `narrowAfter`). */
  public readonly loaded: pulumi.Resource;
  /** With `narrowAfter`: every source of the table is admitted (added to the live table), before it loads. */
  public readonly admitted?: pulumi.Resource;

  constructor(name: string, args: HostFirewallArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hastack:net:HostFirewall", name, {}, opts);
    const t = args.table;
    const conn = connectionFor(args.host, args.ssh);
    const after = (...deps: pulumi.Resource[]): pulumi.CustomResourceOptions => ({ parent: this, dependsOn: deps });
    const rules = renderNftTable(t);
    const unit = renderFirewallUnit(t.name);
    const u = shq(unitName(t.name));

    const packages = installPackages(`${name}-packages`, conn, ["nftables"], after());
    const unitFile = putFile(`${name}-unit`, { connection: conn, path: unitPath(t.name), content: unit }, after(packages));
    const rulesFile = putFile(`${name}-rules`, {
      connection: conn, path: nftPath(t.name), content: rules, mode: "0600", validate: `nft -c -f "$NEW"`,
    }, after(unitFile, ...(args.after ?? [])));
    // enabled once (never replaced, so a rules change cannot run this delete); destroy unloads the table
    const enabled = runScript(`${name}-enable`, {
      connection: conn,
      create: `systemctl daemon-reload\nsystemctl enable ${u} >/dev/null 2>&1\nsystemctl is-active --quiet ${u} || systemctl start ${u}`,
      delete: `systemctl disable ${u} >/dev/null 2>&1 || true\n${deleteTableScript(t.name)}\nrm -f ${shq(unitPath(t.name))}\nsystemctl daemon-reload`,
    }, after(rulesFile));
    // widen at once, narrow later: the sources go into the live table now, the table as rendered after narrowAfter
    if (args.narrowAfter !== undefined) {
      this.admitted = runScript(`${name}-admit`, { connection: conn, create: renderAdmitScript(t), triggers: [sha256(rules)] }, after(enabled));
    }
    // a changed file is loaded by the unit again: one nft transaction replaces the table
    this.loaded = restartOnChange(`${name}-load`, conn, `systemctl daemon-reload\nsystemctl restart ${u}`, [sha256(rules, unit)],
      after(enabled, ...(this.admitted ? [this.admitted] : []), ...(args.narrowAfter ?? [])));
    this.registerOutputs({});
  }
}
