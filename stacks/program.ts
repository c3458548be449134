import { pulumiConfigReader, readStackConfig } from "./config";
import { readPeers } from "./contract";
import { Datacenter, resolveDatacenter } from "./datacenter";
import { PolicyFacts } from "../policy/facts";

/** The hastack program: read and check config, build one datacenter, return its outputs. */
export async function program(): Promise<Record<string, unknown>> {
  const cfg = readStackConfig(pulumiConfigReader());
  // peers first: their contracts decide this site's role, and a disagreement must stop the preview
  const r = resolveDatacenter(cfg);
  const peers = r.site ? await readPeers({ site: r.site, members: r.postgres.nodes, dbPasswords: cfg.passwords }) : {};
  const dc = new Datacenter("dc", cfg, undefined, peers);
  const outputs = dc.exports();
  // what the policy pack (policy/) needs and sees in no other resource: production, waivers, peers, secret marks
  new PolicyFacts("policy-facts", {
    settings: cfg.policy, outputs,
    peerEtcd: (peers.others ?? []).map((c) => ({ site: c.site, members: c.postgres.members.length })),
  });
  return outputs;
}
