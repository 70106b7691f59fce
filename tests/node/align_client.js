// Calls Align (and ListModels) on the alignment service from Node.js, using only the .proto.
//   node align_client.js HOST:PORT IMAGE_FILE [MODEL]
// Prints one JSON object: the models listed and the Align reply's main fields.
"use strict";

const fs = require("fs");
const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const PROTO_ROOT = path.resolve(__dirname, "..", "..", "protos");
const definition = protoLoader.loadSync("stn/alignment/v1/alignment.proto", {
  includeDirs: [PROTO_ROOT],
  keepCase: true, // field names exactly as in the .proto
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
});
const { Alignment } = grpc.loadPackageDefinition(definition).stn.alignment.v1;

const [address, imageFile, model = ""] = process.argv.slice(2);
const client = new Alignment(address, grpc.credentials.createInsecure(), {
  "grpc.max_send_message_length": 64 * 1024 * 1024,
  "grpc.max_receive_message_length": 64 * 1024 * 1024,
});
const deadline = () => new Date(Date.now() + 20000);

client.ListModels({}, { deadline: deadline() }, (err, listed) => {
  if (err) {
    console.error(`ListModels failed: ${err.code} ${err.details}`);
    process.exit(1);
  }
  const request = {
    id: "node-1",
    encoded: fs.readFileSync(imageFile),
    model,
    output: { encoding: "ENCODING_PNG" },
  };
  client.Align(request, { deadline: deadline() }, (alignErr, reply) => {
    if (alignErr) {
      console.error(`Align failed: ${alignErr.code} ${alignErr.details}`);
      process.exit(1);
    }
    const png = reply.rectified.data;
    console.log(
      JSON.stringify({
        models: listed.models.map((m) => ({ name: m.name, family: m.family, provider: m.provider })),
        id: reply.id,
        model: reply.model,
        family: reply.family,
        theta: reply.theta,
        matrix: reply.matrix,
        angle_degrees: reply.angle_degrees,
        rectified: {
          width: reply.rectified.width,
          height: reply.rectified.height,
          png_signature: png.subarray(1, 4).toString("ascii"),
        },
        total_ms: reply.timings.total_ms,
      }),
    );
    client.close();
  });
});
