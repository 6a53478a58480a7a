// PostGraphile 5 (Amber preset) as the peer of `make bench-peers`: one process on the
// bench's database, as its owner (no RLS, no role switch: it sees every row).
// PEER_DATABASE_URL and PEER_PORT come from bench/peers.py.
import { makePgService } from "postgraphile/adaptors/pg";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { jsonPgSmartTags } from "postgraphile/utils";

// dossiers.current_step_instance_id is a plain uuid column (no foreign key, on purpose):
// a virtual foreign key gives PostGraphile the same `currentStep` relation we serve.
const CurrentStep = jsonPgSmartTags({
  version: 1,
  config: {
    class: {
      dossiers: {
        tags: {
          foreignKey:
            "(current_step_instance_id) references step_instances (id)|@fieldName currentStep",
        },
      },
    },
  },
});

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset],
  plugins: [CurrentStep],
  pgServices: [
    makePgService({
      connectionString: process.env.PEER_DATABASE_URL,
      schemas: ["public"],
      poolConfig: { max: 5 }, // as our pools of 5 connections
    }),
  ],
  grafserv: {
    host: "127.0.0.1",
    port: Number(process.env.PEER_PORT || 19360),
    graphiql: false,
    watch: false,
  },
  grafast: { explain: false },
};

export default preset;
