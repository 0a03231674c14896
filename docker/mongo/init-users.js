// Run once by the mongo image on an empty data folder (docker-entrypoint-initdb.d), as root:
// one role and one user per service, each reaching only the collections that service uses
// (the same roles as kubernetes/operators/mongodb.yaml), and `ops` for maintenance.
// Passwords come from the files scripts/compose-secrets.sh made.
const fs = require("fs");
const password = (user) => fs.readFileSync("/run/secrets/mp3svc-tls/mongo-" + user + "-password", "utf8").trim();
const RW = ["find", "insert", "update", "remove", "createIndex"];
const on = (collection, actions) => ({ resource: { db: "mp3svc", collection }, actions });
const roles = {
  gateway: [on("jobs", RW), on("job_slots", RW), on("videos.files", RW), on("videos.chunks", RW),
            on("mp3s.files", ["find", "remove", "createIndex"]), on("mp3s.chunks", ["find", "remove", "createIndex"]),
            on("counters", RW), on("windows", RW)],
  converter: [on("jobs", ["find", "update", "createIndex"]),
              on("videos.files", ["find", "remove", "createIndex"]), on("videos.chunks", ["find", "remove", "createIndex"]),
              on("mp3s.files", RW), on("mp3s.chunks", RW),
              on("converter_served", ["find", "insert", "update"])],
  notification: [on("jobs", ["find", "update", "createIndex"]), on("counters", RW), on("windows", RW),
                 on("webhooks", RW), on("webhook_deliveries", RW)],
};
const admin = db.getSiblingDB("admin");
for (const [user, privileges] of Object.entries(roles)) {
  admin.createRole({ role: "mp3svc-" + user, privileges, roles: [] });
  admin.createUser({ user, pwd: password(user), roles: [{ role: "mp3svc-" + user, db: "admin" }] });
}
admin.createUser({ user: "ops", pwd: password("ops"),
                   roles: [{ role: "readWrite", db: "mp3svc" }, { role: "dbAdmin", db: "mp3svc" }] });
