-- The sample domain of ../../../shared/DESIGN.md: a SaaS backend's users, subscriptions and
-- activity log. gen_random_uuid() is built into PostgreSQL 13+.
CREATE TABLE users (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email       text UNIQUE NOT NULL,
    password    text NOT NULL,
    name        text,
    role        text NOT NULL DEFAULT 'user',
    is_active   boolean NOT NULL DEFAULT true,
    last_login  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE subscriptions (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    plan                   text NOT NULL DEFAULT 'free',
    status                 text NOT NULL DEFAULT 'active',
    stripe_customer_id     text,
    stripe_subscription_id text,
    current_period_start   timestamptz,
    current_period_end     timestamptz,
    cancel_at_period_end   boolean NOT NULL DEFAULT false,
    features               jsonb NOT NULL DEFAULT '{}',
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE user_activities (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    action      text NOT NULL,
    resource    text,
    resource_id text,
    metadata    jsonb,
    ip_address  text,
    user_agent  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- users(email) is indexed by its UNIQUE constraint.
CREATE UNIQUE INDEX subscriptions_user_id ON subscriptions(user_id);
CREATE INDEX user_activities_user_created ON user_activities(user_id, created_at DESC);
