import { Duration, Token } from 'aws-cdk-lib';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import { checkDuration, invalidInput } from '../private/validate';

/**
 * Options of a human approval.
 */
export interface ApprovalOptions {
  /**
   * How long the approval waits. When it runs out the approval fails, the release does not go on, and a release
   * that already runs on a test listener is rolled back.
   *
   * CodePipeline allows 5 minutes to 60 days.
   *
   * @default Duration.hours(24)
   */
  readonly timeout?: Duration;

  /**
   * Text shown to the approver, in the console and in the notification.
   *
   * @default - a message naming the pipeline and what approving does
   */
  readonly message?: string;

  /**
   * Where the approver reviews the change.
   *
   * @default - the new version's test URL when the release offers one, else the build's history with its test reports
   */
  readonly reviewUrl?: string;
}

/**
 * Where the stage gates a release on a human.
 */
export enum ApprovalPlacement {
  /** No human approval. */
  NONE = 'NONE',
  /** An Approve stage between Build (or Verify) and Release. */
  BEFORE_RELEASE = 'BEFORE_RELEASE',
  /**
   * Inside the release, after the new version is reachable on a test endpoint and its smoke tests have passed,
   * before production traffic moves. How a release waits is up to the release; rejecting rolls back.
   */
  BEFORE_PRODUCTION_TRAFFIC = 'BEFORE_PRODUCTION_TRAFFIC',
}

/**
 * Options for the approval action a pipeline or a release creates.
 */
export interface ApprovalActionOptions {
  /**
   * The name of the action.
   */
  readonly actionName: string;

  /**
   * The order of the action within its stage.
   *
   * @default 1
   */
  readonly runOrder?: number;

  /**
   * The review URL to use when the approval did not set one.
   *
   * @default - no link
   */
  readonly defaultReviewUrl?: string;

  /**
   * The timeout to use when the approval did not set one, for releases whose engine allows less than 24 hours.
   *
   * @default Duration.hours(24)
   */
  readonly defaultTimeout?: Duration;

  /**
   * The message to use when the approval did not set one.
   *
   * @default - no message
   */
  readonly defaultMessage?: string;
}

/**
 * Whether, and where, a human approves a release.
 */
export abstract class Approval {
  /** No human approval: every build that passes goes to production. */
  public static none(): Approval {
    return new GateApproval(ApprovalPlacement.NONE, {});
  }

  /** A human approves in an Approve stage before the release starts. */
  public static beforeRelease(options: ApprovalOptions = {}): Approval {
    return new GateApproval(ApprovalPlacement.BEFORE_RELEASE, options);
  }

  /**
   * A human approves after the new version runs on the test endpoint and its smoke tests passed, before production
   * traffic shifts. Rejecting, or letting the approval time out, rolls the release back. The approval's link is the
   * new version's test URL.
   */
  public static beforeProductionTraffic(options: ApprovalOptions = {}): Approval {
    return new GateApproval(ApprovalPlacement.BEFORE_PRODUCTION_TRAFFIC, options);
  }

  /** Where the approval stands in the release. */
  public abstract readonly placement: ApprovalPlacement;

  /**
   * How long the approval waits: the timeout it was given, or 24 hours. A release whose engine allows less uses its
   * own default instead (see `ApprovalActionOptions.defaultTimeout`).
   */
  public abstract readonly timeout: Duration;

  /**
   * The timeout the approval was given.
   *
   * @default - none: 24 hours, or the release's default
   */
  public abstract readonly givenTimeout?: Duration;

  /**
   * The review URL the approval was given.
   *
   * @default - the pipeline or the release decides
   */
  public abstract readonly reviewUrl?: string;

  /**
   * The approval action, or `undefined` for `Approval.none()`.
   */
  public abstract createAction(options: ApprovalActionOptions): codepipeline.IAction | undefined;
}

/** CodePipeline's bounds for a manual approval's timeout. */
const MIN_TIMEOUT = Duration.minutes(5);
const MAX_TIMEOUT = Duration.days(60);

class GateApproval extends Approval {
  public readonly timeout: Duration;
  public readonly givenTimeout?: Duration;
  public readonly reviewUrl?: string;

  constructor(public readonly placement: ApprovalPlacement, private readonly options: ApprovalOptions) {
    super();
    checkDuration(`Approval.${placementFactory(placement)}`, 'timeout', options.timeout, MIN_TIMEOUT, MAX_TIMEOUT, 'minutes');
    this.givenTimeout = options.timeout;
    this.timeout = options.timeout ?? Duration.hours(24);
    this.reviewUrl = options.reviewUrl;
    if (options.reviewUrl !== undefined && !Token.isUnresolved(options.reviewUrl) && !/^https?:\/\/\S+$/.test(options.reviewUrl)) {
      throw invalidInput(`Approval.${placementFactory(placement)}`, 'reviewUrl', options.reviewUrl, 'must be an http(s) URL');
    }
  }

  public createAction(options: ApprovalActionOptions): codepipeline.IAction | undefined {
    if (this.placement === ApprovalPlacement.NONE) {
      return undefined;
    }
    checkDuration(`Approval.${placementFactory(this.placement)}`, 'defaultTimeout', options.defaultTimeout, MIN_TIMEOUT, MAX_TIMEOUT, 'minutes');
    return new actions.ManualApprovalAction({
      actionName: options.actionName,
      runOrder: options.runOrder,
      timeout: this.givenTimeout ?? options.defaultTimeout ?? this.timeout,
      additionalInformation: this.options.message ?? options.defaultMessage,
      externalEntityLink: this.options.reviewUrl ?? options.defaultReviewUrl,
    });
  }
}

function placementFactory(placement: ApprovalPlacement): string {
  switch (placement) {
    case ApprovalPlacement.BEFORE_RELEASE: return 'beforeRelease';
    case ApprovalPlacement.BEFORE_PRODUCTION_TRAFFIC: return 'beforeProductionTraffic';
    default: return 'none';
  }
}
