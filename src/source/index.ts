export * from './pipeline-source';
