/**
 * DeliveryPipeline on its own: every push to `main` builds a static web site, checks it, and releases it into a
 * private S3 bucket served by CloudFront (the first workshop's "website on S3", without its public bucket).
 *
 *   cdk deploy -c connectionArn=arn:aws:codeconnections:<region>:<account>:connection/<id> -c repo=owner/site
 */
import { App, AppProps, CfnOutput, RemovalPolicy, Stack, StackProps, Validations } from 'aws-cdk-lib';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import { CacheControl } from 'aws-cdk-lib/aws-codepipeline-actions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { Approval, DeliveryPipeline, PipelineSource, Release, SmokeTest } from '../../src';
import { repositoryFromContext } from '../caller-environment';

export interface StaticSiteStackProps extends StackProps {
  /** `owner/repo` of the site's repository. */
  readonly repo: string;
  /** The CodeConnections connection to the repository's provider. */
  readonly connectionArn: string;
  /** Who hears about releases. */
  readonly notifyEmails?: string[];
}

export class StaticSiteStack extends Stack {
  public readonly pipeline: DeliveryPipeline;
  public readonly siteBucket: s3.Bucket;
  public readonly distribution: cloudfront.Distribution;

  constructor(scope: Construct, id: string, props: StaticSiteStackProps) {
    super(scope, id, props);

    this.siteBucket = new s3.Bucket(this, 'Site', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      removalPolicy: RemovalPolicy.DESTROY,
      autoDeleteObjects: true,
    });
    Validations.of(this.siteBucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'The bucket is private and read only by CloudFront through origin access control; who reads the site ' +
        'is a CloudFront question, and the site holds no user data.',
    });

    this.distribution = new cloudfront.Distribution(this, 'Cdn', {
      defaultBehavior: {
        origin: origins.S3BucketOrigin.withOriginAccessControl(this.siteBucket),
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
      },
      defaultRootObject: 'index.html',
      minimumProtocolVersion: cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
      priceClass: cloudfront.PriceClass.PRICE_CLASS_100,
    });
    Validations.of(this.distribution).acknowledge(
      { id: 'AwsSolutions-CFR1', reason: 'A public sample site with no user data: no country needs to be blocked.' },
      { id: 'AwsSolutions-CFR2', reason: 'A static sample site with no forms or APIs; a web ACL would cost more than the example (5 USD a month).' },
      { id: 'AwsSolutions-CFR3', reason: 'Standard logs need an ACL-enabled log bucket; the example keeps no logs of anonymous readers of a sample page.' },
      { id: 'AwsSolutions-CFR4', reason: 'The default *.cloudfront.net certificate cannot pin a TLS policy; with your own domain and certificate, TLSv1.2_2021 applies.' },
    );

    this.pipeline = new DeliveryPipeline(this, 'Delivery', {
      source: PipelineSource.connection(props.repo, 'main', {
        connectionArn: props.connectionArn,
        ignoreFilePaths: ['README.md', 'docs/**'],
      }),
      buildStep: {
        buildSpec: codebuild.BuildSpec.fromObject({
          version: '0.2',
          phases: {
            build: {
              commands: [
                // The page must carry its welcome phrase; the check writes a JUnit report either way.
                'mkdir -p reports/junit',
                'if grep -q "Welcome" site/index.html; then r=""; else r="<failure message=\\"welcome phrase missing\\"/>"; fi',
                'echo "<testsuite name=\\"site\\" tests=\\"1\\"><testcase name=\\"welcome phrase\\">$r</testcase></testsuite>" > reports/junit/site.xml',
                'test -z "$r"',
                // What the smoke test reads after the release: the commit that was built.
                'echo "{\\"status\\":\\"ok\\",\\"version\\":\\"$CODEBUILD_RESOLVED_SOURCE_VERSION\\"}" > site/healthcheck.json',
              ],
            },
          },
          artifacts: { 'base-directory': 'site', 'files': ['**/*'] },
        }),
      },
      // After the files are released, the site must answer through CloudFront; if not, the release rolls back.
      release: Release.s3Bucket(this.siteBucket, {
        // No caching in CloudFront or browsers, so the smoke test (and readers) see the release at once.
        cacheControl: [CacheControl.noCache()],
        smokeTest: new SmokeTest(this, 'SiteSmokeTest', {
          baseUrl: `https://${this.distribution.distributionDomainName}`,
          healthPath: '/healthcheck.json',
          expectedPhrase: 'Welcome to the delivery pipelines example',
        }),
      }),
      approval: Approval.none(),
      notifications: { emails: props.notifyEmails },
    });

    new CfnOutput(this, 'SiteUrl', { value: `https://${this.distribution.distributionDomainName}` });
    new CfnOutput(this, 'PipelineName', { value: this.pipeline.pipeline.pipelineName });
  }
}

/** Builds the example app; `npm run examples` and the tests call this, `cdk synth` runs the file. */
export function createApp(props: AppProps = {}): App {
  const app = new App(props);
  new StaticSiteStack(app, 'DeliveryPipelineExample', {
    ...repositoryFromContext(app, 'my-org/my-static-site'),
    notifyEmails: ['release-team@example.com'],
  });
  return app;
}

if (require.main === module) {
  createApp().synth();
}
