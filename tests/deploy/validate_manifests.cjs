// Checks rendered Kubernetes manifests against Kubernetes' own JSON schemas (kubernetes-models)
// and writes them out as JSON for the Python tests to assert on.
//
//   NODE_PATH=<tools>/node_modules node validate_manifests.cjs RENDERED.yaml OUT.json
//
// Exits 1, naming every object and field at fault, on a YAML error, an object of a kind it has
// no schema for, or an object its schema rejects (a missing required field, a wrong type).
// Unknown fields pass the schemas; typecheck_manifests.cjs catches those.
"use strict";
const fs = require("fs");
const YAML = require("yaml");

// Custom resources: no schema in kubernetes-models; the Python test asserts their fields.
const CUSTOM_RESOURCES = new Set(["monitoring.coreos.com/v1/ServiceMonitor"]);

function modelClass(apiVersion, kind) {
  // "v1" is the core group: kubernetes-models/v1; "apps/v1": kubernetes-models/apps/v1.
  try {
    return require(`kubernetes-models/${apiVersion}`)[kind];
  } catch (e) {
    return undefined;
  }
}

function main([renderedPath, outPath]) {
  if (!renderedPath || !outPath) {
    console.error("usage: validate_manifests.cjs RENDERED.yaml OUT.json");
    return 2;
  }
  const problems = [];
  const objects = [];
  for (const doc of YAML.parseAllDocuments(fs.readFileSync(renderedPath, "utf8"))) {
    for (const e of [...doc.errors, ...doc.warnings]) problems.push(`YAML: ${e.message}`);
    const object = doc.toJS();
    if (object === null || object === undefined) continue;  // an empty document
    objects.push(object);
    const name = `${object.kind} ${object.metadata && object.metadata.name}`;
    if (CUSTOM_RESOURCES.has(`${object.apiVersion}/${object.kind}`)) continue;
    const Model = modelClass(object.apiVersion, object.kind);
    if (Model === undefined) {
      problems.push(`${name}: no schema for ${object.apiVersion} ${object.kind}`);
      continue;
    }
    try {
      new Model(object).validate();
    } catch (e) {
      problems.push(`${name}: ${e.message}`);
    }
  }
  fs.writeFileSync(outPath, JSON.stringify(objects, null, 1));
  if (problems.length > 0) {
    console.error(problems.join("\n"));
    return 1;
  }
  return 0;
}

process.exitCode = main(process.argv.slice(2));
