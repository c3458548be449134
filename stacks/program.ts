import { pulumiConfigReader, readStackConfig } from "./config";
import { Datacenter } from "./datacenter";

/** The hastack program: read and check config, build one datacenter, return its outputs. */
export async function program(): Promise<Record<string, unknown>> {
  const cfg = readStackConfig(pulumiConfigReader());
  const dc = new Datacenter("dc", cfg);
  return dc.exports();
}
