"""Privacy options of a dataset: pseudonymized customer ids, and the ISO 4217 currency list.

Personal data (names, e-mails, phone numbers, addresses) never enters the handbook when it is
not mapped: the loader keeps contract columns only and reports the others as ``unused_column``
(names only, never values). What remains personal is the customer id itself when a shop uses
an e-mail address or a phone number as its id. With

.. code-block:: yaml

    privacy:
      pseudonymize_ids: true       # default false
      salt_env: HANDBOOK_SALT      # environment variable holding the secret key (default)

every ``customer_id`` (in every table, in the set-aside rows, in the issue examples and in the
planted truth of synthetic data) is replaced at load time by a keyed hash
``"p_" + hex(HMAC-SHA256(salt, id))[:16]``. The same id gives the same pseudonym in every table
and in every run that uses the same salt; without the salt the pseudonym cannot be reversed or
recomputed from a guessed id. The salt is read from the environment (never from the yaml, so it
is not committed); loading fails with a clear error when the variable is unset or empty.
"""
from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .errors import DataContractError

STRING = pd.StringDtype("pyarrow")
PRIVACY_KEYS = ("pseudonymize_ids", "salt_env")
DEFAULT_SALT_ENV = "HANDBOOK_SALT"
PSEUDONYM_PREFIX = "p_"
PSEUDONYM_HEX = 16  # 64 bits: no collision expected below ~10^8 distinct ids (checked anyway)
#: contract columns that identify a person and are pseudonymized
PERSON_ID_COLUMNS = ("customer_id",)


@dataclass(frozen=True)
class PrivacyOptions:
    """``privacy:`` of dataset.yaml (see the module docstring)."""

    pseudonymize_ids: bool = False
    salt_env: str = DEFAULT_SALT_ENV

    @classmethod
    def parse(cls, raw: Mapping[str, Any], where: str) -> "PrivacyOptions":
        import difflib

        for key in raw:
            if key not in PRIVACY_KEYS:
                close = difflib.get_close_matches(str(key), PRIVACY_KEYS, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise DataContractError(f"{where}: unknown key {key!r}.{hint} Allowed keys: "
                                        f"{', '.join(PRIVACY_KEYS)}.")
        flag = raw.get("pseudonymize_ids", False)
        if not isinstance(flag, bool):
            raise DataContractError(f"{where}: pseudonymize_ids must be true or false, got "
                                    f"{flag!r}.")
        env = str(raw.get("salt_env") or DEFAULT_SALT_ENV)
        return cls(flag, env)

    def key(self, dataset: str) -> bytes | None:
        """The HMAC key from the environment (``None`` when pseudonymization is off)."""
        if not self.pseudonymize_ids:
            return None
        salt = os.environ.get(self.salt_env, "")
        if not salt:
            raise DataContractError(
                f"Dataset {dataset!r}: privacy.pseudonymize_ids is on but the environment "
                f"variable {self.salt_env} (privacy.salt_env) is not set. Fix: export "
                f"{self.salt_env}=<a long random secret> (keep it out of the repository; the same "
                "secret gives the same pseudonyms in every run), e.g. "
                f"`export {self.salt_env}=$(python -c 'import secrets; print(secrets.token_hex(32))')`.")
        return salt.encode("utf-8")


def pseudonym(value: str, key: bytes) -> str:
    """The pseudonym of one id (``p_`` + 16 hex digits of HMAC-SHA256)."""
    digest = hmac.new(key, str(value).encode("utf-8"), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:PSEUDONYM_HEX]


def pseudonymize(ids: pd.Series, key: bytes) -> pd.Series:
    """``ids`` (strings, may hold NA) with each distinct value replaced by its pseudonym.

    Raises :class:`DataContractError` in the (astronomically unlikely) event that two distinct
    ids get the same pseudonym, rather than silently merging two customers.
    """
    codes, uniques = pd.factorize(ids)
    hashed = [pseudonym(v, key) for v in np.asarray(uniques, dtype=object)]
    if len(set(hashed)) != len(hashed):
        raise DataContractError("privacy: two distinct customer ids got the same pseudonym; "
                                "use another salt.")
    arr = pd.array(np.asarray(hashed, dtype=object), dtype=STRING)
    return pd.Series(arr.take(codes, allow_fill=True), index=ids.index, dtype=STRING,
                     name=ids.name)


#: Active ISO 4217 codes (2024 list, including funds and precious-metal codes) plus a few
#: withdrawn codes that historical exports still carry (e.g. HRK before 2023, the euro's
#: predecessors). ``currency:`` in dataset.yaml must be one of them.
ISO_4217: frozenset[str] = frozenset("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP
BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB
EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY
KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR
MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB
RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD
TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD XCG
XDR XOF XPD XPF XPT XSU XTS XUA XXX YER ZAR ZMW ZWG ZWL
ATS BEF BYR DEM EEK ESP FIM FRF GRD HRK IEP ITL LTL LVL MRO NLG PTE SKK STD VEF ZMK
""".split())

#: Common non-ISO spellings and what they mean.
CURRENCY_ALIASES = {"RMB": "CNY", "YUAN": "CNY", "NTD": "TWD", "UKP": "GBP", "STG": "GBP",
                    "EURO": "EUR", "YEN": "JPY", "US$": "USD", "USDOLLAR": "USD"}


def check_currency(code: object, where: str) -> str:
    """``code`` if it is an ISO 4217 currency code, else a :class:`DataContractError` with a
    suggestion (``RMB`` -> ``CNY``, ``gbp`` -> ``GBP``, close spellings)."""
    import difflib

    text = str(code)
    if text in ISO_4217:
        return text
    upper = text.strip().upper()
    hint = ""
    if upper in ISO_4217:
        hint = f" Did you mean {upper!r} (codes are upper case)?"
    elif upper in CURRENCY_ALIASES:
        hint = f" Did you mean {CURRENCY_ALIASES[upper]!r}?"
    else:
        close = difflib.get_close_matches(upper, sorted(ISO_4217), n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]!r}?" if close else ""
    raise DataContractError(f"{where}: currency {text!r} is not an ISO 4217 code.{hint} Fix: set "
                            "currency in dataset.yaml to the three-letter code of the currency "
                            "every amount is in, e.g. 'GBP', 'USD', 'CNY'.")
