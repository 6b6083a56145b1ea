import Foundation
import Hummingbird

/// The OpenAPI 3.1 document of `/api/v1`, served at `GET /api/v1/openapi.json` without a token
/// (it describes the API and holds no data). This text is the one source: `docs/openapi.json` is a
/// copy that `OpenAPITests` keeps equal (run them with DOORBELL_WRITE_OPENAPI=1 to rewrite it), and
/// they fail when a registered `/api/v1` route is missing here.
public enum OpenAPI {
    /// The document, exactly as served.
    public static let document: String = #"""
{
  "openapi": "3.1.0",
  "info": {
    "title": "Doorbell API",
    "version": "1",
    "description": "Doorbell's JSON API: events, runs, deliveries, endpoints, sources and pollers. Every operation but this document needs Authorization: Bearer <token> with a token from api.tokens. Lists are newest first and paged: pass next_cursor as ?cursor=. Filters shared with the dashboard: source, type, status, since, until, q, cursor, limit."
  },
  "servers": [
    {
      "url": "/"
    }
  ],
  "security": [
    {
      "bearer": []
    }
  ],
  "paths": {
    "/api/v1/openapi.json": {
      "get": {
        "operationId": "getOpenAPI",
        "summary": "This document",
        "security": [],
        "tags": [
          "meta"
        ],
        "responses": {
          "200": {
            "description": "The OpenAPI 3.1 document",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/events": {
      "get": {
        "operationId": "listEvents",
        "summary": "Events, newest first",
        "tags": [
          "events"
        ],
        "parameters": [
          {
            "name": "source",
            "in": "query",
            "required": false,
            "schema": {
              "type": "string",
              "maxLength": 400
            },
            "description": "Only this source (exact)"
          },
          {
            "name": "type",
            "in": "query",
            "required": false,
            "schema": {
              "type": "string",
              "maxLength": 400
            },
            "description": "Only this event type (exact)"
          },
          {
            "name": "status",
            "in": "query",
            "required": false,
            "schema": {
              "type": "string",
              "pattern": "^(pending|running|waiting_retry|succeeded|dead|paused)(,(pending|running|waiting_retry|succeeded|dead|paused))*$"
            },
            "description": "One or more run statuses, comma-separated. On events: events with a run or delivery in one of them"
          },
          {
            "name": "since",
            "in": "query",
            "required": false,
            "schema": {
              "type": "string",
              "format": "date-time"
            },
            "description": "Received at or after this time (ISO 8601)"
          },
          {
            "name": "until",
            "in": "query",
            "required": false,
            "schema": {
              "type": "string",
              "format": "date-time"
            },
            "description": "Received before this time (ISO 8601)"
          },
          {
            "name": "q",
            "in": "query",
            "required": false,
            "schema": {
              "type": "string",
              "maxLength": 1000
            },
            "description": "Text the event's raw body contains, compared byte for byte (case-sensitive, no wildcards). One page reads at most 50,000 bodies below the cursor (events of the source and type asked for; runs or deliveries of any kind): it may hold fewer items than limit, even none, and still carry a next_cursor that continues the search further back; next_cursor is null once everything was searched (or the search reached back past since)."
          },
          {
            "name": "cursor",
            "in": "query",
            "required": false,
            "schema": {
              "type": "string",
              "pattern": "^[1-9][0-9]{0,17}$"
            },
            "description": "The previous page's next_cursor"
          },
          {
            "name": "limit",
            "in": "query",
            "required": false,
            "schema": {
              "type": "integer",
              "minimum": 1,
              "maximum": 500,
              "default": 50
            },
            "description": "Rows per page"
          }
        ],
        "responses": {
          "200": {
            "description": "A page of events",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/EventPage"
                }
              }
            }
          },
          "400": {
            "description": "A bad query parameter or body field; the message names it",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      },
      "post": {
        "operationId": "publishEvent",
        "summary": "Publish an event of our own (source api)",
        "tags": [
          "events"
        ],
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/PublishEvent"
              }
            }
          }
        },
        "responses": {
          "202": {
            "description": "Stored (or the same idempotency_key stored it before)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Published"
                }
              }
            }
          },
          "400": {
            "description": "A bad query parameter or body field; the message names it",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "Body larger than 1 MiB",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/events/{id}": {
      "get": {
        "operationId": "getEvent",
        "summary": "One event with its runs, steps, deliveries and attempts (the timeline)",
        "tags": [
          "events"
        ],
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "description": "The event",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/EventDetail"
                }
              }
            }
          },
          "404": {
            "description": "Not found",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/events/{id}/replay": {
      "post": {
        "operationId": "replayEvent",
        "summary": "Run the event's dead runs again (from_start: also succeeded ones, from step one)",
        "tags": [
          "events"
        ],
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "requestBody": {
          "required": false,
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/ReplayEvent"
              }
            }
          }
        },
        "responses": {
          "202": {
            "description": "How many runs went back to the queue",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ReplayCount"
                }
              }
            }
          },
          "400": {
            "description": "A bad query parameter or body field; the message names it",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Not found",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "Body larger than 1 MiB",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/runs": {
      "get": {
        "operationId": "listRuns",
        "summary": "Automation runs, newest first",
        "tags": [
          "runs"
        ],
        "parameters": [
          {
            "name": "source",
            "in": "query",
            "required": false,
            "schema": {
              "type": "string",
              "maxLength": 400
            },
            "description": "Only this source (exact)"
          },
          {
            "name": "type",
            "in": "query",
            "required": false,
            "schema": {
              "type": "string",
              "maxLength": 400
            },
            "description": "Only this event type (exact)"
          },
          {
            "name": "status",
            "in": "query",
            "required": false,
            "schema": {
              "type": "string",
              "pattern": "^(pending|running|waiting_retry|succeeded|dead|paused)(,(pending|running|waiting_retry|succeeded|dead|paused))*$"
            },
            "description": "One or more run statuses, comma-separated. On events: events with a run or delivery in one of them"
          },
          {
            "name": "since",
            "in": "query",
            "required": false,
            "schema": {
              "type": "string",
              "format": "date-time"
            },
            "description": "Received at or after this time (ISO 8601)"
          },
          {
            "name": "until",
            "in": "query",
            "required": false,
            "schema": {
              "type": "string",
              "format": "date-time"
            },
            "description": "Received before this time (ISO 8601)"
          },
          {
            "name": "q",
            "in": "query",
            "required": false,
            "schema": {
              "type": "string",
              "maxLength": 1000
            },
            "description": "Text the event's raw body contains, compared byte for byte (case-sensitive, no wildcards). One page reads at most 50,000 bodies below the cursor (events of the source and type asked for; runs or deliveries of any kind): it may hold fewer items than limit, even none, and still carry a next_cursor that continues the search further back; next_cursor is null once everything was searched (or the search reached back past since)."
          },
          {
            "name": "automation",
            "in": "query",
            "required": false,
            "schema": {
              "type": "string",
              "maxLength": 400
            },
            "description": "Only runs of this automation"
          },
          {
            "name": "event",
            "in": "query",
            "required": false,
            "schema": {
              "type": "string",
              "maxLength": 400
            },
            "description": "Only runs or deliveries of this event"
          },
          {
            "name": "cursor",
            "in": "query",
            "required": false,
            "schema": {
              "type": "string",
              "pattern": "^[0-9]{1,18}\\.[0-9]{1,18}$"
            },
            "description": "The previous page's next_cursor"
          },
          {
            "name": "limit",
            "in": "query",
            "required": false,
            "schema": {
              "type": "integer",
              "minimum": 1,
              "maximum": 500,
              "default": 50
            },
            "description": "Rows per page"
          }
        ],
        "responses": {
          "200": {
            "description": "A page of runs",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/RunPage"
                }
              }
            }
          },
          "400": {
            "description": "A bad query parameter or body field; the message names it",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/runs/replay": {
      "post": {
        "operationId": "replayRuns",
        "summary": "Replay the runs a filter selects; dry_run counts them first",
        "tags": [
          "runs"
        ],
        "requestBody": {
          "required": false,
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/BulkReplay"
              }
            }
          }
        },
        "responses": {
          "200": {
            "description": "dry_run: how many would be replayed",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ReplayCount"
                }
              }
            }
          },
          "202": {
            "description": "How many were replayed",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ReplayCount"
                }
              }
            }
          },
          "400": {
            "description": "A bad query parameter or body field; the message names it",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "Body larger than 1 MiB",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/runs/{id}": {
      "get": {
        "operationId": "getRun",
        "summary": "One run with its completed steps",
        "tags": [
          "runs"
        ],
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "description": "The run",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Run"
                }
              }
            }
          },
          "404": {
            "description": "Not found",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/runs/{id}/replay": {
      "post": {
        "operationId": "replayRun",
        "summary": "Replay one run: a dead one resumes at its failed step unless from_start",
        "tags": [
          "runs"
        ],
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "requestBody": {
          "required": false,
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/ReplayRun"
              }
            }
          }
        },
        "responses": {
          "202": {
            "description": "Back in the queue",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/RunReplayed"
                }
              }
            }
          },
          "409": {
            "description": "Not finished (pending or running): nothing replayed",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/RunReplayed"
                }
              }
            }
          },
          "400": {
            "description": "A bad query parameter or body field; the message names it",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Not found",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "Body larger than 1 MiB",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/sources": {
      "get": {
        "operationId": "listSources",
        "summary": "Sources with how many events each holds",
        "tags": [
          "sources"
        ],
        "responses": {
          "200": {
            "description": "Every configured source and api",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/SourceList"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/endpoints": {
      "get": {
        "operationId": "listEndpoints",
        "summary": "Endpoints (secrets, URLs and header values redacted)",
        "tags": [
          "endpoints"
        ],
        "responses": {
          "200": {
            "description": "Every endpoint",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/EndpointList"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      },
      "post": {
        "operationId": "createEndpoint",
        "summary": "Add an endpoint",
        "tags": [
          "endpoints"
        ],
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/EndpointFields"
              }
            }
          }
        },
        "responses": {
          "201": {
            "description": "Created; shows its secret once",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Endpoint"
                }
              }
            }
          },
          "400": {
            "description": "A bad query parameter or body field; the message names it",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "409": {
            "description": "Conflict",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "Body larger than 1 MiB",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/endpoints/{id}": {
      "get": {
        "operationId": "getEndpoint",
        "summary": "One endpoint",
        "tags": [
          "endpoints"
        ],
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "description": "The endpoint",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Endpoint"
                }
              }
            }
          },
          "404": {
            "description": "Not found",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      },
      "patch": {
        "operationId": "updateEndpoint",
        "summary": "Change an endpoint added through the API",
        "tags": [
          "endpoints"
        ],
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "requestBody": {
          "required": false,
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/EndpointFields"
              }
            }
          }
        },
        "responses": {
          "200": {
            "description": "Changed",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Endpoint"
                }
              }
            }
          },
          "400": {
            "description": "A bad query parameter or body field; the message names it",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Not found",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "409": {
            "description": "Conflict",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "Body larger than 1 MiB",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      },
      "delete": {
        "operationId": "deleteEndpoint",
        "summary": "Remove an endpoint added through the API",
        "tags": [
          "endpoints"
        ],
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "204": {
            "description": "Removed"
          },
          "404": {
            "description": "Not found",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "409": {
            "description": "Conflict",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/endpoints/{id}/secret": {
      "get": {
        "operationId": "getEndpointSecret",
        "summary": "One endpoint with its URL, headers and secrets in full",
        "tags": [
          "endpoints"
        ],
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "description": "The endpoint",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Endpoint"
                }
              }
            }
          },
          "404": {
            "description": "Not found",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/endpoints/{id}/rotate-secret": {
      "post": {
        "operationId": "rotateEndpointSecret",
        "summary": "A new signing secret; the old one signs too for the overlap",
        "tags": [
          "endpoints"
        ],
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "requestBody": {
          "required": false,
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/RotateSecret"
              }
            }
          }
        },
        "responses": {
          "200": {
            "description": "Rotated; shows the secrets",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Endpoint"
                }
              }
            }
          },
          "400": {
            "description": "A bad query parameter or body field; the message names it",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Not found",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "Body larger than 1 MiB",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/endpoints/{id}/enable": {
      "post": {
        "operationId": "enableEndpoint",
        "summary": "Enable (resumes paused deliveries)",
        "tags": [
          "endpoints"
        ],
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "description": "The endpoint",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Endpoint"
                }
              }
            }
          },
          "404": {
            "description": "Not found",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/endpoints/{id}/disable": {
      "post": {
        "operationId": "disableEndpoint",
        "summary": "Disable (deliveries wait, paused)",
        "tags": [
          "endpoints"
        ],
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "description": "The endpoint",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Endpoint"
                }
              }
            }
          },
          "404": {
            "description": "Not found",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/deliveries": {
      "get": {
        "operationId": "listDeliveries",
        "summary": "Deliveries, newest first",
        "tags": [
          "deliveries"
        ],
        "parameters": [
          {
            "name": "source",
            "in": "query",
            "required": false,
            "schema": {
              "type": "string",
              "maxLength": 400
            },
            "description": "Only this source (exact)"
          },
          {
            "name": "type",
            "in": "query",
            "required": false,
            "schema": {
              "type": "string",
              "maxLength": 400
            },
            "description": "Only this event type (exact)"
          },
          {
            "name": "status",
            "in": "query",
            "required": false,
            "schema": {
              "type": "string",
              "pattern": "^(pending|running|waiting_retry|succeeded|dead|paused)(,(pending|running|waiting_retry|succeeded|dead|paused))*$"
            },
            "description": "One or more run statuses, comma-separated. On events: events with a run or delivery in one of them"
          },
          {
            "name": "since",
            "in": "query",
            "required": false,
            "schema": {
              "type": "string",
              "format": "date-time"
            },
            "description": "Received at or after this time (ISO 8601)"
          },
          {
            "name": "until",
            "in": "query",
            "required": false,
            "schema": {
              "type": "string",
              "format": "date-time"
            },
            "description": "Received before this time (ISO 8601)"
          },
          {
            "name": "q",
            "in": "query",
            "required": false,
            "schema": {
              "type": "string",
              "maxLength": 1000
            },
            "description": "Text the event's raw body contains, compared byte for byte (case-sensitive, no wildcards). One page reads at most 50,000 bodies below the cursor (events of the source and type asked for; runs or deliveries of any kind): it may hold fewer items than limit, even none, and still carry a next_cursor that continues the search further back; next_cursor is null once everything was searched (or the search reached back past since)."
          },
          {
            "name": "endpoint",
            "in": "query",
            "required": false,
            "schema": {
              "type": "string",
              "maxLength": 400
            },
            "description": "Only deliveries to this endpoint"
          },
          {
            "name": "event",
            "in": "query",
            "required": false,
            "schema": {
              "type": "string",
              "maxLength": 400
            },
            "description": "Only runs or deliveries of this event"
          },
          {
            "name": "cursor",
            "in": "query",
            "required": false,
            "schema": {
              "type": "string",
              "pattern": "^[0-9]{1,18}\\.[0-9]{1,18}$"
            },
            "description": "The previous page's next_cursor"
          },
          {
            "name": "limit",
            "in": "query",
            "required": false,
            "schema": {
              "type": "integer",
              "minimum": 1,
              "maximum": 500,
              "default": 50
            },
            "description": "Rows per page"
          }
        ],
        "responses": {
          "200": {
            "description": "A page of deliveries",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/DeliveryPage"
                }
              }
            }
          },
          "400": {
            "description": "A bad query parameter or body field; the message names it",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/deliveries/retry": {
      "post": {
        "operationId": "retryDeliveries",
        "summary": "Retry the deliveries a filter selects (dead by default); dry_run counts them",
        "tags": [
          "deliveries"
        ],
        "requestBody": {
          "required": false,
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/BulkRetry"
              }
            }
          }
        },
        "responses": {
          "200": {
            "description": "dry_run: how many would be retried",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/DeliveriesRetried"
                }
              }
            }
          },
          "202": {
            "description": "How many were retried",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/DeliveriesRetried"
                }
              }
            }
          },
          "400": {
            "description": "A bad query parameter or body field; the message names it",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "Body larger than 1 MiB",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/deliveries/{id}": {
      "get": {
        "operationId": "getDelivery",
        "summary": "One delivery with its attempts",
        "tags": [
          "deliveries"
        ],
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "description": "The delivery",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Delivery"
                }
              }
            }
          },
          "404": {
            "description": "Not found",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/deliveries/{id}/retry": {
      "post": {
        "operationId": "retryDelivery",
        "summary": "Send one delivery again (same webhook-id)",
        "tags": [
          "deliveries"
        ],
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "202": {
            "description": "Back in the queue",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/DeliveryRetried"
                }
              }
            }
          },
          "409": {
            "description": "Not finished: nothing retried",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/DeliveryRetried"
                }
              }
            }
          },
          "404": {
            "description": "Not found",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/pollers": {
      "get": {
        "operationId": "listPollers",
        "summary": "Pollers and their state",
        "tags": [
          "pollers"
        ],
        "responses": {
          "200": {
            "description": "Every poller",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/PollerList"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/pollers/{id}": {
      "get": {
        "operationId": "getPoller",
        "summary": "One poller's state",
        "tags": [
          "pollers"
        ],
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "description": "The poller",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Poller"
                }
              }
            }
          },
          "404": {
            "description": "Not found",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/pollers/{id}/run": {
      "post": {
        "operationId": "runPoller",
        "summary": "Poll now; dry_run shows what it would emit",
        "tags": [
          "pollers"
        ],
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "requestBody": {
          "required": false,
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/PollRun"
              }
            }
          }
        },
        "responses": {
          "200": {
            "description": "What the poll emitted",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/PollReport"
                }
              }
            }
          },
          "502": {
            "description": "The poll failed",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "400": {
            "description": "A bad query parameter or body field; the message names it",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Not found",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/pollers/{id}/reset": {
      "post": {
        "operationId": "resetPoller",
        "summary": "Forget what the poller has seen (next poll is a first run)",
        "tags": [
          "pollers"
        ],
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "description": "Reset",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/PollerReset"
                }
              }
            }
          },
          "404": {
            "description": "Not found",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "Missing or unknown API token, or the API is off (no api.tokens)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "Storage unavailable",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    }
  },
  "components": {
    "securitySchemes": {
      "bearer": {
        "type": "http",
        "scheme": "bearer"
      }
    },
    "schemas": {
      "Error": {
        "type": "object",
        "required": [
          "error"
        ],
        "properties": {
          "error": {
            "type": "string"
          }
        }
      },
      "EventSummary": {
        "type": "object",
        "required": [
          "id",
          "source",
          "type",
          "received_at"
        ],
        "properties": {
          "id": {
            "type": "string"
          },
          "source": {
            "type": "string"
          },
          "type": {
            "type": "string"
          },
          "received_at": {
            "type": "string",
            "format": "date-time",
            "description": "ISO 8601 UTC time with milliseconds"
          }
        }
      },
      "EventPage": {
        "type": "object",
        "required": [
          "data",
          "next_cursor"
        ],
        "properties": {
          "data": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/EventSummary"
            }
          },
          "next_cursor": {
            "type": [
              "string",
              "null"
            ],
            "description": "Pass as ?cursor= for the next page; null on the last"
          }
        }
      },
      "Header": {
        "type": "object",
        "required": [
          "name",
          "value"
        ],
        "properties": {
          "name": {
            "type": "string"
          },
          "value": {
            "type": "string"
          }
        }
      },
      "EventDetail": {
        "type": "object",
        "description": "An event with its runs and deliveries: the timeline",
        "required": [
          "id",
          "source",
          "type",
          "provider_id",
          "received_at",
          "depth",
          "headers",
          "body",
          "body_encoding",
          "runs",
          "deliveries"
        ],
        "properties": {
          "id": {
            "type": "string"
          },
          "source": {
            "type": "string"
          },
          "type": {
            "type": "string"
          },
          "provider_id": {
            "type": [
              "string",
              "null"
            ]
          },
          "received_at": {
            "type": "string",
            "format": "date-time",
            "description": "ISO 8601 UTC time with milliseconds"
          },
          "depth": {
            "type": "integer",
            "minimum": 0
          },
          "headers": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/Header"
            },
            "description": "As received; credential headers (Authorization, Cookie, …) show …"
          },
          "body": {
            "type": "string"
          },
          "body_encoding": {
            "type": "string",
            "enum": [
              "utf8",
              "base64"
            ]
          },
          "runs": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/Run"
            }
          },
          "deliveries": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/Delivery"
            }
          }
        }
      },
      "PublishEvent": {
        "type": "object",
        "required": [
          "type",
          "data"
        ],
        "additionalProperties": false,
        "properties": {
          "type": {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "description": "1 to 200 bytes of UTF-8, no control characters"
          },
          "data": {
            "anyOf": [
              {
                "type": "object"
              },
              {
                "type": "array"
              }
            ],
            "description": "The event's body: an object or a list"
          },
          "idempotency_key": {
            "type": "string",
            "minLength": 1,
            "maxLength": 500,
            "description": "The same key twice stores one event: at most 500 bytes of UTF-8, no control characters"
          }
        }
      },
      "Published": {
        "type": "object",
        "required": [
          "id",
          "duplicate"
        ],
        "properties": {
          "id": {
            "type": "string"
          },
          "duplicate": {
            "type": "boolean"
          }
        }
      },
      "ReplayEvent": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
          "from_start": {
            "type": "boolean",
            "default": false,
            "description": "Run every step again, succeeded runs too"
          },
          "automation": {
            "type": "string",
            "description": "Only this automation; started if it never ran for the event"
          }
        }
      },
      "Step": {
        "type": "object",
        "required": [
          "id",
          "position",
          "output",
          "completed_at"
        ],
        "properties": {
          "id": {
            "type": "string"
          },
          "position": {
            "type": "integer",
            "minimum": 0,
            "description": "Index in the automation"
          },
          "output": {
            "description": "The JSON the step produced"
          },
          "completed_at": {
            "type": "string",
            "format": "date-time",
            "description": "ISO 8601 UTC time with milliseconds"
          }
        }
      },
      "Run": {
        "type": "object",
        "required": [
          "id",
          "event_id",
          "automation",
          "status",
          "next_step",
          "failures",
          "next_attempt_at",
          "last_error",
          "created_at",
          "updated_at"
        ],
        "properties": {
          "id": {
            "type": "string"
          },
          "event_id": {
            "type": "string"
          },
          "automation": {
            "type": "string"
          },
          "status": {
            "type": "string",
            "enum": [
              "pending",
              "running",
              "waiting_retry",
              "succeeded",
              "dead",
              "paused"
            ]
          },
          "next_step": {
            "type": "integer",
            "minimum": 0
          },
          "failures": {
            "type": "integer",
            "minimum": 0
          },
          "next_attempt_at": {
            "type": "string",
            "format": "date-time",
            "description": "ISO 8601 UTC time with milliseconds"
          },
          "last_error": {
            "type": [
              "string",
              "null"
            ]
          },
          "created_at": {
            "type": "string",
            "format": "date-time",
            "description": "ISO 8601 UTC time with milliseconds"
          },
          "updated_at": {
            "type": "string",
            "format": "date-time",
            "description": "ISO 8601 UTC time with milliseconds"
          },
          "steps": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/Step"
            },
            "description": "Completed steps (only on one run, and in an event's timeline)"
          }
        }
      },
      "RunPage": {
        "type": "object",
        "required": [
          "data",
          "next_cursor"
        ],
        "properties": {
          "data": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/Run"
            }
          },
          "next_cursor": {
            "type": [
              "string",
              "null"
            ]
          }
        }
      },
      "ReplayRun": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
          "from_start": {
            "type": "boolean",
            "default": false
          }
        }
      },
      "RunReplayed": {
        "type": "object",
        "required": [
          "replayed",
          "status"
        ],
        "properties": {
          "replayed": {
            "type": "integer",
            "minimum": 0,
            "maximum": 1
          },
          "status": {
            "type": "string",
            "enum": [
              "pending",
              "running",
              "waiting_retry",
              "succeeded",
              "dead",
              "paused"
            ],
            "description": "The run's status before"
          }
        }
      },
      "BulkReplay": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
          "source": {
            "type": "string",
            "maxLength": 400
          },
          "type": {
            "type": "string",
            "maxLength": 400
          },
          "status": {
            "type": "string",
            "pattern": "^(pending|running|waiting_retry|succeeded|dead|paused)(,(pending|running|waiting_retry|succeeded|dead|paused))*$"
          },
          "since": {
            "type": "string",
            "format": "date-time"
          },
          "until": {
            "type": "string",
            "format": "date-time"
          },
          "q": {
            "type": "string",
            "maxLength": 1000
          },
          "automation": {
            "type": "string",
            "maxLength": 400
          },
          "event": {
            "type": "string",
            "maxLength": 400
          },
          "from_start": {
            "type": "boolean",
            "default": false
          },
          "dry_run": {
            "type": "boolean",
            "default": false,
            "description": "Only count"
          }
        },
        "description": "Filters as in GET /api/v1/runs (strings); status defaults to dead (with from_start: dead,succeeded)"
      },
      "ReplayCount": {
        "type": "object",
        "required": [
          "replayed",
          "dry_run"
        ],
        "properties": {
          "replayed": {
            "type": "integer",
            "minimum": 0,
            "description": "Runs put back in the queue, or with dry_run how many would be"
          },
          "dry_run": {
            "type": "boolean"
          }
        }
      },
      "Attempt": {
        "type": "object",
        "required": [
          "number",
          "started_at",
          "status",
          "latency_ms",
          "response",
          "error"
        ],
        "properties": {
          "number": {
            "type": "integer"
          },
          "started_at": {
            "type": "string",
            "format": "date-time",
            "description": "ISO 8601 UTC time with milliseconds"
          },
          "status": {
            "type": [
              "integer",
              "null"
            ]
          },
          "latency_ms": {
            "type": "integer"
          },
          "response": {
            "type": [
              "string",
              "null"
            ]
          },
          "error": {
            "type": [
              "string",
              "null"
            ]
          }
        }
      },
      "Delivery": {
        "type": "object",
        "required": [
          "id",
          "event_id",
          "endpoint",
          "status",
          "failures",
          "next_attempt_at",
          "last_error"
        ],
        "properties": {
          "id": {
            "type": "string"
          },
          "event_id": {
            "type": "string"
          },
          "endpoint": {
            "type": "string"
          },
          "status": {
            "type": "string",
            "enum": [
              "pending",
              "running",
              "waiting_retry",
              "succeeded",
              "dead",
              "paused"
            ]
          },
          "failures": {
            "type": "integer",
            "minimum": 0
          },
          "next_attempt_at": {
            "type": "string",
            "format": "date-time",
            "description": "ISO 8601 UTC time with milliseconds"
          },
          "last_error": {
            "type": [
              "string",
              "null"
            ]
          },
          "attempts": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/Attempt"
            },
            "description": "Only on one delivery, and in an event's timeline"
          }
        }
      },
      "DeliveryPage": {
        "type": "object",
        "required": [
          "data",
          "next_cursor"
        ],
        "properties": {
          "data": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/Delivery"
            }
          },
          "next_cursor": {
            "type": [
              "string",
              "null"
            ]
          }
        }
      },
      "BulkRetry": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
          "source": {
            "type": "string",
            "maxLength": 400
          },
          "type": {
            "type": "string",
            "maxLength": 400
          },
          "status": {
            "type": "string",
            "pattern": "^(pending|running|waiting_retry|succeeded|dead|paused)(,(pending|running|waiting_retry|succeeded|dead|paused))*$"
          },
          "since": {
            "type": "string",
            "format": "date-time"
          },
          "until": {
            "type": "string",
            "format": "date-time"
          },
          "q": {
            "type": "string",
            "maxLength": 1000
          },
          "endpoint": {
            "type": "string",
            "maxLength": 400
          },
          "event": {
            "type": "string",
            "maxLength": 400
          },
          "dry_run": {
            "type": "boolean",
            "default": false
          }
        },
        "description": "Filters as in GET /api/v1/deliveries (strings); status defaults to dead"
      },
      "DeliveryRetried": {
        "type": "object",
        "required": [
          "retried",
          "status"
        ],
        "properties": {
          "retried": {
            "type": "integer",
            "minimum": 0,
            "maximum": 1
          },
          "status": {
            "type": "string",
            "enum": [
              "pending",
              "running",
              "waiting_retry",
              "succeeded",
              "dead",
              "paused"
            ],
            "description": "The delivery's status before"
          }
        }
      },
      "DeliveriesRetried": {
        "type": "object",
        "required": [
          "retried"
        ],
        "properties": {
          "retried": {
            "type": "integer",
            "minimum": 0
          },
          "dry_run": {
            "type": "boolean"
          }
        }
      },
      "Retry": {
        "type": "object",
        "required": [
          "schedule",
          "jitter"
        ],
        "properties": {
          "schedule": {
            "type": "array",
            "items": {
              "type": "number",
              "minimum": 0
            },
            "description": "Seconds before each attempt"
          },
          "jitter": {
            "type": "number",
            "minimum": 0,
            "maximum": 1
          }
        }
      },
      "Secret": {
        "type": "object",
        "required": [
          "secret",
          "expires_at"
        ],
        "properties": {
          "secret": {
            "type": "string"
          },
          "expires_at": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          }
        }
      },
      "Endpoint": {
        "type": "object",
        "required": [
          "id",
          "url",
          "events",
          "headers",
          "enabled",
          "from_config",
          "rate_limit",
          "disabled_reason",
          "description",
          "retry",
          "secrets"
        ],
        "properties": {
          "id": {
            "type": "string"
          },
          "url": {
            "type": "string",
            "description": "Redacted except from …/secret and on create"
          },
          "events": {
            "type": "array",
            "items": {
              "type": "string"
            }
          },
          "headers": {
            "type": "object",
            "additionalProperties": {
              "type": "string"
            }
          },
          "enabled": {
            "type": "boolean"
          },
          "from_config": {
            "type": "boolean"
          },
          "rate_limit": {
            "type": [
              "string",
              "null"
            ]
          },
          "disabled_reason": {
            "type": [
              "string",
              "null"
            ]
          },
          "description": {
            "type": [
              "string",
              "null"
            ]
          },
          "retry": {
            "oneOf": [
              {
                "$ref": "#/components/schemas/Retry"
              },
              {
                "type": "null"
              }
            ]
          },
          "secrets": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/Secret"
            }
          }
        }
      },
      "EndpointList": {
        "type": "object",
        "required": [
          "data"
        ],
        "properties": {
          "data": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/Endpoint"
            }
          }
        }
      },
      "EndpointFields": {
        "type": "object",
        "additionalProperties": false,
        "description": "On create url is required; id and secret only on create",
        "properties": {
          "id": {
            "type": "string"
          },
          "url": {
            "type": "string"
          },
          "events": {
            "type": "array",
            "items": {
              "type": "string"
            }
          },
          "secret": {
            "type": "string"
          },
          "rate_limit": {
            "type": [
              "string",
              "integer",
              "null"
            ],
            "description": "Deliveries per time such as 10/s, 600/m"
          },
          "headers": {
            "type": "object",
            "additionalProperties": {
              "type": "string"
            }
          },
          "enabled": {
            "type": "boolean"
          },
          "description": {
            "type": [
              "string",
              "null"
            ]
          },
          "retry": {
            "oneOf": [
              {
                "type": "null"
              },
              {
                "type": "object",
                "required": [
                  "schedule"
                ],
                "additionalProperties": false,
                "properties": {
                  "schedule": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                      "type": [
                        "string",
                        "number"
                      ]
                    }
                  },
                  "jitter": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": 1
                  }
                }
              }
            ]
          }
        }
      },
      "RotateSecret": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
          "secret": {
            "type": [
              "string",
              "null"
            ],
            "description": "whsec_… or whsk_…; generated when left out"
          },
          "overlap": {
            "type": [
              "string",
              "null"
            ],
            "description": "How long the old secret still signs, such as 24h"
          }
        }
      },
      "Source": {
        "type": "object",
        "required": [
          "id",
          "provider",
          "events",
          "last_event_at"
        ],
        "properties": {
          "id": {
            "type": "string"
          },
          "provider": {
            "type": "string"
          },
          "events": {
            "type": "integer",
            "minimum": 0
          },
          "last_event_at": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          }
        }
      },
      "SourceList": {
        "type": "object",
        "required": [
          "data"
        ],
        "properties": {
          "data": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/Source"
            }
          }
        }
      },
      "Poller": {
        "type": "object",
        "required": [
          "id",
          "schedule",
          "last_poll_at",
          "last_success_at",
          "last_error",
          "items_seen",
          "next_poll_at",
          "failing"
        ],
        "properties": {
          "id": {
            "type": "string"
          },
          "schedule": {
            "type": "string"
          },
          "last_poll_at": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "last_success_at": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "last_error": {
            "type": [
              "string",
              "null"
            ]
          },
          "items_seen": {
            "type": "integer",
            "minimum": 0
          },
          "next_poll_at": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "failing": {
            "type": "boolean"
          }
        }
      },
      "PollerList": {
        "type": "object",
        "required": [
          "data"
        ],
        "properties": {
          "data": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/Poller"
            }
          }
        }
      },
      "PollRun": {
        "type": "object",
        "properties": {
          "dry_run": {
            "type": "boolean",
            "default": false
          }
        }
      },
      "PollReport": {
        "type": "object",
        "required": [
          "poller",
          "dry_run",
          "committed",
          "first_run",
          "not_modified",
          "pages",
          "items",
          "new_items",
          "changed_items",
          "emitted"
        ],
        "properties": {
          "poller": {
            "type": "string"
          },
          "dry_run": {
            "type": "boolean"
          },
          "committed": {
            "type": "boolean"
          },
          "first_run": {
            "type": "boolean"
          },
          "not_modified": {
            "type": "boolean"
          },
          "more_pages": {
            "description": "max_pages or the poll's byte budget stopped the walk before the last page; the next poll goes on",
            "type": "boolean"
          },
          "pages": {
            "type": "integer"
          },
          "items": {
            "type": "integer"
          },
          "new_items": {
            "type": "integer"
          },
          "changed_items": {
            "type": "integer"
          },
          "emitted": {
            "type": "array",
            "items": {
              "type": "object",
              "required": [
                "item_id",
                "type",
                "provider_id",
                "event_id",
                "kind",
                "duplicate"
              ],
              "properties": {
                "item_id": {
                  "type": "string"
                },
                "type": {
                  "type": "string"
                },
                "provider_id": {
                  "type": "string"
                },
                "event_id": {
                  "type": "string"
                },
                "kind": {
                  "type": "string",
                  "enum": [
                    "new",
                    "changed"
                  ]
                },
                "duplicate": {
                  "type": "boolean"
                }
              }
            }
          }
        }
      },
      "PollerReset": {
        "type": "object",
        "required": [
          "id",
          "reset"
        ],
        "properties": {
          "id": {
            "type": "string"
          },
          "reset": {
            "type": "boolean"
          }
        }
      }
    }
  }
}
"""#

    static var response: Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: document + "\n")))
    }

    /// The document's operations as `METHOD /path` (`GET /api/v1/runs/{id}`).
    static let operations: Set<String> = {
        guard let root = try? JSONSerialization.jsonObject(with: Data(document.utf8)) as? [String: Any],
              let paths = root["paths"] as? [String: [String: Any]] else { return [] }
        return Set(paths.flatMap { path, item in item.keys.map { "\($0.uppercased()) \(path)" } })
    }()

    /// The `/api/v1` routes (`METHOD /path`, as Hummingbird describes them) the document leaves out.
    static func undocumented(_ routes: [String]) -> [String] {
        routes.filter { route in
            let parts = route.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[1].hasPrefix("/api/v1"), parts[0] != "HEAD", parts[0] != "OPTIONS" else { return false }
            return !operations.contains(route)
        }.sorted()
    }
}
