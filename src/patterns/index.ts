export * from './fargate-blue-green-pipeline';
