import { pulumiConfigReader, readStackConfig } from "./config";
import { readPeers } from "./contract";
import { Datacenter, resolveDatacenter } from "./datacenter";

/** The hastack program: read and check config, build one datacenter, return its outputs. */
export async function program(): Promise<Record<string, unknown>> {
  const cfg = readStackConfig(pulumiConfigReader());
  // peers first: their contracts decide this site's role, and a disagreement must stop the preview
  const r = resolveDatacenter(cfg);
  const peers = r.site ? await readPeers({ site: r.site, members: r.postgres.nodes, dbPasswords: cfg.passwords }) : {};
  const dc = new Datacenter("dc", cfg, undefined, peers);
  return dc.exports();
}
