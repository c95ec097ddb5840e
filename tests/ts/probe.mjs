// A client nobody here wrote, in another language: the TypeScript SDK starts SendWelcome
// and queries an import's progress. Prints one JSON object for tests/test_ts_sdk.py.
import { Client, Connection } from "@temporalio/client";

const [address, taskQueue, userId, importWorkflowId] = process.argv.slice(2);
const connection = await Connection.connect({ address });
try {
  const client = new Client({ connection, namespace: "default" });
  const welcome = await client.workflow.execute("SendWelcome", {
    taskQueue,
    workflowId: `welcome-${userId}`,
    args: [{ user_id: userId }],
  });
  const progress = await client.workflow.getHandle(importWorkflowId).query("progress");
  console.log(JSON.stringify({ welcome, progress }));
} finally {
  await connection.close();
}
