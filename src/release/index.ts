export * from './release';
export * from './smoke-test';
