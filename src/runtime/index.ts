export * from './instance-secret';
