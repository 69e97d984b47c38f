import { Duration, RemovalPolicy, Token } from 'aws-cdk-lib';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { acknowledgeCodeBuildDefaults } from '../private/acknowledgements';
import { createLogGroup } from '../private/log-group';
import { checkDuration, checkNoSecretLikeNames, checkNotEmpty, invalidInput, SECRET_LIKE_NAME } from '../private/validate';

/**
 * The processor architecture a build runs on.
 */
export enum BuildArchitecture {
  /** AWS Graviton (arm64): cheaper per minute; builds arm64 container images natively. */
  ARM_64 = 'ARM_64',
  /** x86_64. */
  X86_64 = 'X86_64',
}

/**
 * A secret handed to the build as an environment variable. CodeBuild resolves it when the build starts: the value
 * never appears in the template, the project or the console.
 */
export abstract class BuildSecret {
  /**
   * A parameter of SSM Parameter Store (String or SecureString). The build role may read only this parameter.
   */
  public static fromSsmParameter(parameter: ssm.IParameter): BuildSecret {
    return new SsmBuildSecret(parameter);
  }

  /**
   * A secret of AWS Secrets Manager, whole or one JSON field of it. The build role may read only this secret.
   *
   * @param jsonField a top-level key of the secret's JSON value
   */
  public static fromSecretsManager(secret: secretsmanager.ISecret, jsonField?: string): BuildSecret {
    return new SecretsManagerBuildSecret(secret, jsonField);
  }

  /**
   * Grants the build role read access and returns the environment variable.
   */
  public abstract bind(grantee: iam.IGrantable): codebuild.BuildEnvironmentVariable;
}

class SsmBuildSecret extends BuildSecret {
  constructor(private readonly parameter: ssm.IParameter) { super(); }

  public bind(grantee: iam.IGrantable): codebuild.BuildEnvironmentVariable {
    this.parameter.grantRead(grantee);
    return { type: codebuild.BuildEnvironmentVariableType.PARAMETER_STORE, value: this.parameter.parameterName };
  }
}

class SecretsManagerBuildSecret extends BuildSecret {
  constructor(private readonly secret: secretsmanager.ISecret, private readonly jsonField?: string) {
    super();
    if (jsonField !== undefined) {
      checkNotEmpty('BuildSecret.fromSecretsManager', 'jsonField', jsonField);
    }
  }

  public bind(grantee: iam.IGrantable): codebuild.BuildEnvironmentVariable {
    this.secret.grantRead(grantee);
    return {
      type: codebuild.BuildEnvironmentVariableType.SECRETS_MANAGER,
      value: this.jsonField ? `${this.secret.secretArn}:${this.jsonField}` : this.secret.secretArn,
    };
  }
}

/**
 * How the build step builds.
 */
export interface BuildStepOptions {
  /**
   * The buildspec.
   *
   * An inline buildspec (`BuildSpec.fromObject`) gets a `reports` section for the JUnit report group; a buildspec
   * from the source reports to `reportGroup` by naming its ARN, which the build sees as `JUNIT_REPORT_GROUP_ARN`.
   *
   * @default - the `buildspec.yml` of the source revision
   */
  readonly buildSpec?: codebuild.BuildSpec;

  /**
   * The processor architecture of the build.
   *
   * @default BuildArchitecture.ARM_64
   */
  readonly architecture?: BuildArchitecture;

  /**
   * The build image.
   *
   * @default - Amazon Linux 2023 standard image of the architecture (Node.js, Python, Java, Go, Docker)
   */
  readonly buildImage?: codebuild.IBuildImage;

  /**
   * The compute size of the build.
   *
   * @default codebuild.ComputeType.SMALL
   */
  readonly computeType?: codebuild.ComputeType;

  /**
   * Run the build in privileged mode, which `docker build` needs.
   *
   * @default false
   */
  readonly privileged?: boolean;

  /**
   * Plain environment variables of the build: configuration only. A name that looks like a secret (PASSWORD,
   * SECRET, TOKEN, ...) is refused; pass those as `secrets`.
   *
   * @default - none
   */
  readonly environmentVariables?: { [name: string]: string };

  /**
   * Secrets the build sees as environment variables, resolved by CodeBuild from SSM Parameter Store or Secrets
   * Manager when the build starts.
   *
   * @default - none
   */
  readonly secrets?: { [name: string]: BuildSecret };

  /**
   * The build cache.
   *
   * @default - local source and custom caches (plus the Docker layer cache when privileged), which cost nothing
   */
  readonly cache?: codebuild.Cache;

  /**
   * How long a build may run. CodeBuild allows 5 minutes to 36 hours.
   *
   * @default Duration.minutes(30)
   */
  readonly timeout?: Duration;

  /**
   * How long build logs are kept.
   *
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;

  /**
   * The directory, relative to the source root, where the build writes JUnit XML test reports.
   *
   * @default 'reports/junit'
   */
  readonly testReportDirectory?: string;
}

/**
 * Options of the pipeline action that runs a build step.
 */
export interface BuildStepActionOptions {
  /** The name of the action. */
  readonly actionName: string;

  /** The primary input: the buildspec and the working directory come from it. */
  readonly input: codepipeline.Artifact;

  /**
   * More inputs, each at `$CODEBUILD_SRC_DIR_<artifact name>`.
   *
   * @default - none
   */
  readonly extraInputs?: codepipeline.Artifact[];

  /**
   * The artifacts the build writes.
   *
   * @default - none
   */
  readonly outputs?: codepipeline.Artifact[];

  /**
   * The namespace of the variables the build exports (`env.exported-variables` of the buildspec), which later actions
   * read as `#{<namespace>.<NAME>}`.
   *
   * @default - the build's variables are not available to other actions
   */
  readonly variablesNamespace?: string;

  /**
   * Plain-text environment variables of this action's builds (for example `#{<namespace>.<NAME>}` of an earlier
   * action), next to `PIPELINE_EXECUTION_ID`. Never secrets: CodePipeline shows them in the console. Names are letters,
   * digits and `_` (not starting with a digit or `CODEBUILD_`, not `PIPELINE_EXECUTION_ID`, `JUNIT_REPORT_GROUP_ARN` or
   * a name of the step's `secrets`, nothing that looks like a secret), and all of them together, as the action's
   * JSON configuration, stay within CodePipeline's 1,000 characters.
   *
   * @default - only PIPELINE_EXECUTION_ID
   */
  readonly environmentVariables?: { [name: string]: string };

  /**
   * The run order of the action in its stage.
   *
   * @default 1
   */
  readonly runOrder?: number;
}

/**
 * Properties of `BuildStep`.
 */
export interface BuildStepProps extends BuildStepOptions {
  /**
   * The key that encrypts build artifacts (the pipeline's artifact key).
   */
  readonly encryptionKey: kms.IKey;

  /**
   * What happens to the log group and the report group when the stack is deleted.
   *
   * @default RemovalPolicy.DESTROY
   */
  readonly removalPolicy?: RemovalPolicy;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** CodePipeline's limit on one value of an action's configuration, here the `EnvironmentVariables` JSON. */
const ACTION_CONFIGURATION_VALUE_LIMIT = 1000;
/** Variables the build step sets itself. */
const RESERVED_NAMES = ['JUNIT_REPORT_GROUP_ARN', 'PIPELINE_EXECUTION_ID'];

/**
 * A CodeBuild project for a pipeline: least-privilege role, encrypted artifacts, a cache, a JUnit report group,
 * secrets from SSM Parameter Store and Secrets Manager, and a log group with retention.
 */
export class BuildStep extends Construct {
  /** The CodeBuild project. */
  public readonly project: codebuild.PipelineProject;

  /** The role the build runs with. */
  public readonly role: iam.IRole;

  /** The build's log group. */
  public readonly logGroup: logs.LogGroup;

  /** The report group that receives the JUnit test reports. */
  public readonly reportGroup: codebuild.ReportGroup;

  /** The names of the step's secrets, which an action's plain variables must not override. */
  private readonly secretNames: string[];

  constructor(scope: Construct, id: string, props: BuildStepProps) {
    super(scope, id);
    this.validate(props);
    this.secretNames = Object.keys(props.secrets ?? {});
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.DESTROY;
    const arm = (props.architecture ?? BuildArchitecture.ARM_64) === BuildArchitecture.ARM_64;
    const privileged = props.privileged ?? false;

    this.logGroup = createLogGroup(this, 'Logs', props.logRetention, removalPolicy);
    this.reportGroup = new codebuild.ReportGroup(this, 'TestReports', {
      type: codebuild.ReportGroupType.TEST,
      removalPolicy,
      deleteReports: removalPolicy === RemovalPolicy.DESTROY,
    });

    const role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('codebuild.amazonaws.com'),
      description: `Runs the builds of ${this.node.path}`,
    });
    this.role = role;

    const environmentVariables: { [name: string]: codebuild.BuildEnvironmentVariable } = {
      JUNIT_REPORT_GROUP_ARN: { value: this.reportGroup.reportGroupArn },
    };
    for (const [name, value] of Object.entries(props.environmentVariables ?? {})) {
      environmentVariables[name] = { value };
    }
    for (const [name, secret] of Object.entries(props.secrets ?? {})) {
      environmentVariables[name] = secret.bind(role);
    }

    const reportDirectory = props.testReportDirectory ?? 'reports/junit';
    this.project = new codebuild.PipelineProject(this, 'Project', {
      description: `Build step of ${this.node.path}`,
      role,
      buildSpec: withTestReports(props.buildSpec ?? codebuild.BuildSpec.fromSourceFilename('buildspec.yml'),
        this.reportGroup, reportDirectory),
      environment: {
        buildImage: props.buildImage ?? (arm
          ? codebuild.LinuxArmBuildImage.AMAZON_LINUX_2023_STANDARD_3_0
          : codebuild.LinuxBuildImage.AMAZON_LINUX_2023_5),
        computeType: props.computeType ?? codebuild.ComputeType.SMALL,
        privileged,
      },
      environmentVariables,
      encryptionKey: props.encryptionKey,
      cache: props.cache ?? codebuild.Cache.local(...[
        codebuild.LocalCacheMode.SOURCE,
        codebuild.LocalCacheMode.CUSTOM,
        ...(privileged ? [codebuild.LocalCacheMode.DOCKER_LAYER] : []),
      ]),
      timeout: props.timeout ?? Duration.minutes(30),
      logging: { cloudWatch: { logGroup: this.logGroup } },
    });
    this.reportGroup.grantWrite(role);
    // aws-cdk-lib lets a project create report groups named `<project>-*`, which CodeBuild does at run time for a
    // buildspec that names a group instead of giving an ARN; nothing would delete them. Reports go to `reportGroup`,
    // which CloudFormation creates: the deny leaves it out, in case CodeBuild checks the permission on it too.
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      effect: iam.Effect.DENY,
      actions: ['codebuild:CreateReportGroup'],
      notResources: [this.reportGroup.reportGroupArn],
    }));
    acknowledgeCodeBuildDefaults(role, this.project);
  }

  /**
   * A CodePipeline action that runs this build step; the build sees the pipeline execution as `PIPELINE_EXECUTION_ID`.
   */
  public pipelineAction(options: BuildStepActionOptions): codepipeline.IAction {
    const namespace = options.variablesNamespace;
    if (namespace !== undefined && !Token.isUnresolved(namespace) && !/^[A-Za-z0-9@_-]{1,100}$/.test(namespace)) {
      throw invalidInput(this, 'variablesNamespace', namespace, 'must be 1 to 100 letters, digits or @ _ -');
    }
    this.validateActionVariables(options.environmentVariables ?? {});
    return new actions.CodeBuildAction({
      actionName: options.actionName,
      project: this.project,
      input: options.input,
      extraInputs: options.extraInputs,
      outputs: options.outputs,
      variablesNamespace: options.variablesNamespace,
      runOrder: options.runOrder,
      environmentVariables: {
        ...Object.fromEntries(Object.entries(options.environmentVariables ?? {}).map(([name, value]) => [name, { value }])),
        PIPELINE_EXECUTION_ID: { value: '#{codepipeline.PipelineExecutionId}' },
      },
    });
  }

  /**
   * What CodePipeline and CodeBuild would refuse, or silently get wrong, in an action's plain variables: CodePipeline
   * overrides the project's variables with them when it starts the build.
   */
  private validateActionVariables(variables: { [name: string]: string }): void {
    const property = 'environmentVariables';
    for (const name of Object.keys(variables)) {
      if (!ENV_NAME.test(name) || name.startsWith('CODEBUILD_')) {
        throw invalidInput(this, property, name,
          "must name variables with letters, digits and '_', not starting with a digit or 'CODEBUILD_' (CodeBuild's own)");
      }
      if (RESERVED_NAMES.includes(name)) {
        throw invalidInput(this, property, name,
          `must not set ${RESERVED_NAMES.join(' or ')}, which the build step sets itself`);
      }
      if (this.secretNames.includes(name)) {
        throw invalidInput(this, property, name,
          "must not override a variable of the step's 'secrets' with a plain-text value");
      }
    }
    checkNoSecretLikeNames(this, property, variables,
      "CodePipeline shows action variables in the console; give the build step a 'secrets' entry (BuildSecret.fromSsmParameter() or BuildSecret.fromSecretsManager()) instead");
    // The configuration value as aws-cdk-lib writes it; unresolved values count as empty, so a value known only at
    // deploy time is never refused.
    const measured = [...Object.entries(variables), ['PIPELINE_EXECUTION_ID', '#{codepipeline.PipelineExecutionId}']]
      .map(([name, value]) => ({ name, type: 'PLAINTEXT', value: Token.isUnresolved(value) ? '' : value }));
    const length = JSON.stringify(measured).length;
    if (length > ACTION_CONFIGURATION_VALUE_LIMIT) {
      throw invalidInput(this, property, `${length} characters`,
        `must fit, with PIPELINE_EXECUTION_ID, in CodePipeline's ${ACTION_CONFIGURATION_VALUE_LIMIT} characters for the action's EnvironmentVariables configuration (a JSON list of name, type and value)`);
    }
  }

  private validate(props: BuildStepProps): void {
    checkDuration(this, 'timeout', props.timeout, Duration.minutes(5), Duration.hours(36), 'minutes');
    for (const [property, variables] of [['environmentVariables', props.environmentVariables], ['secrets', props.secrets]] as const) {
      for (const name of Object.keys(variables ?? {})) {
        if (!ENV_NAME.test(name) || name.startsWith('CODEBUILD_') || RESERVED_NAMES.includes(name)) {
          throw invalidInput(this, property, name,
            `must name variables with letters, digits and '_', not starting with a digit or 'CODEBUILD_', and not ${RESERVED_NAMES.join(' or ')}`);
        }
      }
    }
    for (const name of Object.keys(props.secrets ?? {})) {
      if (props.environmentVariables?.[name] !== undefined) {
        throw invalidInput(this, 'secrets', name, "must not repeat a name of 'environmentVariables'");
      }
    }
    for (const name of Object.keys(props.environmentVariables ?? {})) {
      if (SECRET_LIKE_NAME.test(name)) {
        throw invalidInput(this, 'environmentVariables', name,
          "must not carry secrets in plain text: pass it in 'secrets' with BuildSecret.fromSsmParameter() or BuildSecret.fromSecretsManager()");
      }
    }
    if (props.testReportDirectory !== undefined) {
      checkNotEmpty(this, 'testReportDirectory', props.testReportDirectory);
      if (props.testReportDirectory.startsWith('/')) {
        throw invalidInput(this, 'testReportDirectory', props.testReportDirectory, 'must be relative to the source root');
      }
    }
  }
}

/** Adds the JUnit report group to an inline buildspec; other buildspecs name the group themselves. */
function withTestReports(buildSpec: codebuild.BuildSpec, reportGroup: codebuild.IReportGroup, directory: string): codebuild.BuildSpec {
  if (!('spec' in buildSpec)) {
    return buildSpec;
  }
  const reports = {
    [reportGroup.reportGroupArn]: { 'files': ['**/*.xml'], 'base-directory': directory, 'file-format': 'JUNITXML' },
  };
  // `mergeBuildSpecs` takes only `fromObject` buildspecs; a `fromObjectToYaml` one is rebuilt with the reports added.
  if (buildSpec.constructor === YAML_BUILD_SPEC) {
    const spec = (buildSpec as unknown as { spec: { [key: string]: any } }).spec;
    return codebuild.BuildSpec.fromObjectToYaml({ ...spec, reports: { ...spec.reports, ...reports } });
  }
  return codebuild.mergeBuildSpecs(buildSpec, codebuild.BuildSpec.fromObject({ reports }));
}

const YAML_BUILD_SPEC = codebuild.BuildSpec.fromObjectToYaml({}).constructor;
