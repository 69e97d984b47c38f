import { Duration } from 'aws-cdk-lib';

/**
 * One route of the API and the handler that serves it.
 */
export interface ApiRoute {
  /** `METHOD /path`, e.g. `GET /`, `GET /sleep/{secs}`, `ANY /files/{path+}`. */
  readonly route: string;

  /** The handler's source file in the repository (TypeScript or JavaScript), bundled by esbuild: `src/sleep.ts`. */
  readonly entry: string;

  /**
   * The name of the exported handler function in `entry`.
   *
   * @default 'handler'
   */
  readonly handler?: string;

  /**
   * Memory of this route's function in MB (Lambda: 128 to 10240).
   *
   * @default - the pattern's `memorySize`
   */
  readonly memorySize?: number;

  /**
   * Timeout of this route's function (Lambda: 1 second to 15 minutes; API Gateway answers 504 after 29 seconds).
   *
   * @default - the pattern's `timeout`
   */
  readonly timeout?: Duration;

  /**
   * Environment variables of this route's function, on top of the pattern's `environment`.
   *
   * @default - none
   */
  readonly environment?: { [name: string]: string };

  /**
   * The concrete path the pre-traffic test requests, for a route with path parameters: `/sleep/0`.
   *
   * @default - the route's path when it has no parameters; a route with parameters is not invoked by the test
   */
  readonly smokeTestPath?: string;
}
