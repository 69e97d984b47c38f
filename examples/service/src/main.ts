/**
 * Entry point: `node dist/main.js` in the container, `npx ts-node examples/service/src/main.ts` locally.
 * Listens on $PORT (default 8080) and shuts down gracefully on SIGTERM / SIGINT.
 */
import { createServer } from './app';

const DEFAULT_PORT = 8080;
/** In-flight requests (a /sleep can last 30 s) get this long after SIGTERM before connections are cut. */
const SHUTDOWN_GRACE_MS = 25_000;

function portFromEnv(value: string | undefined): number {
  if (value === undefined || value === '') {
    return DEFAULT_PORT;
  }
  const port = Number(value);
  if (!/^[0-9]+$/.test(value) || port > 65_535) {
    throw new Error(`PORT must be an integer from 0 to 65535, got ${JSON.stringify(value)}`);
  }
  return port;
}

const port = portFromEnv(process.env.PORT);
const server = createServer();

server.listen(port, () => {
  console.log(`delivery-pipelines sample service listening on port ${port}`);
});

let shuttingDown = false;
function shutdown(signal: NodeJS.Signals): void {
  if (shuttingDown) {
    return;
  }
  shuttingDown = true;
  console.log(`${signal} received: closing the server`);
  // Stops accepting connections, closes idle keep-alive ones and calls back once in-flight requests are done.
  server.close((err) => {
    if (err) {
      console.error(`error while closing the server: ${err.message}`);
    }
    console.log('server closed, exiting');
    process.exit(0);
  });
  // Requests still running after the grace period are cut off; close()'s callback then fires.
  setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS).unref();
}

process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
